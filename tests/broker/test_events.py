"""Events: the catalog announces each trade on <ns>.events; a Subscriber hears them across reconnects."""
import json
import queue
import time

import pytest

from broker import events
from trading.stocks import stock_changed

FISHCO = {"name": "FishCo", "price": 11.5, "quantity": 97, "trading_volume": 3, "seq": 1}


@pytest.fixture
def fishco_events(admin, settings):
    """A queue of the test's own bound to FishCo's events only."""
    events.declare_exchange(admin.channel, settings)
    name = admin.channel.queue_declare("", exclusive=True).method.queue
    admin.channel.queue_bind(name, settings.events_exchange, "stock.FishCo")
    return name


class Heard(queue.Queue):
    """A listener that queues what it hears, in order: events, "connected" and "disconnected"."""

    def on_event(self, kind, body):
        self.put((kind, body))

    def on_connected(self):
        self.put("connected")

    def on_disconnected(self):
        self.put("disconnected")


@pytest.fixture
def heard(settings):
    """What a Subscriber hears."""
    heard = Heard()
    subscriber = events.Subscriber(settings, "test-events")
    subscriber.listeners.append(heard)
    subscriber.start()
    assert heard.get(timeout=10) == "connected"
    yield heard
    subscriber.stop()


def test_a_trade_announces_the_stock_after_it(api, admin, fishco_events):
    assert api.post("/orders", {"name": "FishCo", "quantity": 1000, "type": "buy"})[0] == 409
    assert api.post("/orders", {"name": "FishCo", "quantity": 3, "type": "buy"})[0] == 200
    props, body = admin.get(fishco_events)
    assert json.loads(body) == FISHCO
    assert (props.type, props.content_type, props.app_id) == ("stock.changed", "application/json", "order")
    assert abs(props.timestamp - time.time()) < 60
    assert admin.channel.basic_get(fishco_events)[0] is None  # the rejected trade announced nothing


def test_another_stock_goes_to_another_routing_key(api, admin, fishco_events):
    api.post("/orders", {"name": "BoarCo", "quantity": 1, "type": "sell"})
    api.post("/orders", {"name": "FishCo", "quantity": 3, "type": "buy"})
    assert json.loads(admin.get(fishco_events)[1])["seq"] == 2


def test_subscriber_hears_events_and_comes_back_after_losing_its_connection(admin, settings, heard):
    admin.channel.basic_publish(*stock_changed(settings, "test", FISHCO))
    assert heard.get(timeout=5) == ("stock.changed", FISHCO)
    assert admin.close_connections("test-events") == 1
    assert heard.get(timeout=5) == "disconnected"
    assert heard.get(timeout=10) == "connected"
    admin.channel.basic_publish(*stock_changed(settings, "test", {**FISHCO, "seq": 2}))
    assert heard.get(timeout=5) == ("stock.changed", {**FISHCO, "seq": 2})


def test_subscriber_drops_a_malformed_event(admin, settings, heard):
    for body in (b"not json", b"[1, 2]"):
        admin.channel.basic_publish(settings.events_exchange, "stock.FishCo", body)
    admin.channel.basic_publish(*stock_changed(settings, "test", FISHCO))
    assert heard.get(timeout=5) == ("stock.changed", FISHCO)

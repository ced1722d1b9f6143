"""Events: a topic exchange per namespace that workers publish to and anyone may watch, and the
Subscriber that hands them to its listeners."""
import json
import logging
from typing import Any, Protocol

from pika import BlockingConnection
from pika.exceptions import ChannelClosedByBroker

from broker import tracing
from broker.consumer import Consumer
from runtime.settings import Settings

log = logging.getLogger(__name__)
NOT_FOUND = 404  # the AMQP reply code to a passive declare of what does not exist


class Listener(Protocol):
    """What an event source tells: each event, and when it (re)connects or loses its connection."""

    def on_event(self, kind: str, event: dict) -> None: ...

    def on_connected(self) -> None: ...

    def on_disconnected(self) -> None: ...


def declare_exchange(channel: Any, settings: Settings) -> None:
    channel.exchange_declare(settings.events_exchange, "topic", durable=True)


class Subscriber(Consumer):
    """Hands events to each of ``listeners`` from a thread of its own, reconnecting with backoff.

    The queue is exclusive, auto-deleted and server-named: every subscriber gets each event once,
    and nothing piles up while it is away, so it misses what is published while disconnected.
    ``on_connected`` runs once the queue is bound (drop whatever earlier events built up);
    ``on_disconnected`` runs as soon as the connection is lost (stop trusting that state).
    Binding keys default to every stock (``stock.#``: a name may contain dots).
    """

    def __init__(self, settings: Settings, name: str, keys: tuple[str, ...] = ("stock.#",)) -> None:
        super().__init__(settings, name)
        self.keys = keys
        self.listeners: list[Listener] = []

    def subscribe(self, connection: BlockingConnection) -> None:
        channel = connection.channel()
        # Passively while the exchange exists (compose's broker makes it at boot), which needs no
        # configure permission on it: so a watcher's credentials cannot delete it. Made only if missing.
        try:
            channel.exchange_declare(self.settings.events_exchange, passive=True)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            channel = connection.channel()
            declare_exchange(channel, self.settings)
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for key in self.keys:
            channel.queue_bind(queue, self.settings.events_exchange, key)
        channel.basic_consume(queue, self._on_message, auto_ack=True)
        for listener in self.listeners:
            listener.on_connected()

    def disconnected(self) -> None:
        for listener in self.listeners:
            listener.on_disconnected()

    def _on_message(self, _channel: Any, _method: Any, props: Any, body: bytes) -> None:
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("dropping malformed event %r from %s: %s", body[:200], props.app_id, exc)
            return
        exchange = self.settings.events_exchange
        with tracing.span(f"{exchange} receive", tracing.SpanKind.CONSUMER, exchange, props.headers):
            for listener in self.listeners:
                listener.on_event(props.type, event)

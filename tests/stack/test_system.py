"""What the page shows of the system: replicas from their announcements, and the last minute of trades."""
import time

import pytest

from client.session import Session
from frontend.system import SystemView
from harness.stack import Stack

STATUS = "order.status"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def view(clock):
    return SystemView(clock)


def test_each_replica_shows_as_it_last_announced_itself_and_turns_silent(view, clock):
    view.on_event(STATUS, {"replica": 1, "leading": False, "position": 7, "orders": 5})
    view.on_event(STATUS, {"replica": 0, "leading": True, "position": 7, "orders": 5})
    clock.now += 2
    view.on_event(STATUS, {"replica": 0, "leading": True, "position": 9, "orders": 6})
    assert view.snapshot()["replicas"] == [
        {"replica": 0, "leading": True, "position": 9, "orders": 6, "name": "order-0", "heard_s": 0.0,
         "silent": False},
        {"replica": 1, "leading": False, "position": 7, "orders": 5, "name": "order-1", "heard_s": 2.0,
         "silent": False}]
    clock.now += 1.5
    assert [r["silent"] for r in view.snapshot()["replicas"]] == [False, True]


@pytest.mark.parametrize("kind, event", [
    ("stock.changed", {"replica": 0, "leading": True, "position": 1, "orders": 1}),
    (STATUS, {"replica": "0", "leading": True, "position": 1, "orders": 1}),
    (STATUS, {"replica": True, "leading": True, "position": 1, "orders": 1}),
    (STATUS, {"replica": 0, "leading": 1, "position": 1, "orders": 1}),
    (STATUS, {"replica": 0, "leading": True, "orders": 1}),
])
def test_anything_but_a_well_formed_status_is_ignored(view, kind, event):
    view.on_event(kind, event)
    assert view.snapshot()["replicas"] == []


@pytest.mark.parametrize("event_connection", ["on_connected", "on_disconnected"])
def test_a_reconnect_forgets_the_replicas_until_they_announce_themselves_again(view, event_connection):
    view.on_event(STATUS, {"replica": 0, "leading": True, "position": 1, "orders": 1})
    getattr(view, event_connection)()
    assert view.snapshot()["replicas"] == []


def test_trades_per_second_and_their_median_over_the_last_minute(view, clock):
    assert view.snapshot()["trades"] == {"per_second": [0] * 60, "p50_ms": None, "count": 0}
    for seconds in (0.002, 0.004, 0.100):
        view.trade_answered(seconds)
    clock.now += 30.5
    view.trade_answered(0.003)
    trades = view.snapshot()["trades"]
    assert (trades["count"], trades["p50_ms"]) == (4, 3.5)
    assert trades["per_second"][29] == 3 and trades["per_second"][59] == 1 and sum(trades["per_second"]) == 4
    clock.now += 30
    assert view.snapshot()["trades"]["count"] == 1  # the first three are over a minute old


@pytest.mark.slow
def test_system_shows_the_leader_and_a_failover(settings, tmp_path):
    with Stack(settings, log_dir=tmp_path, replicas=3) as stack:
        api = Session(stack.url)
        assert api.post("/orders", {"name": "GameStart", "quantity": 1, "type": "buy"})[0] == 200
        # Followers apply the stream in rounds of up to 0.2 s, and each announces itself every second.
        replicas = wait_for_system(api, lambda rs: len(rs) == 3 and sum(r["leading"] for r in rs) == 1
                                   and {(r["orders"], r["silent"]) for r in rs} == {(1, False)})
        leader = next(r["name"] for r in replicas if r["leading"])
        assert api.get("/system")[1]["data"]["trades"]["count"] == 1

        stack.kill(leader)
        replicas = wait_for_system(api, lambda rs: any(r["leading"] and r["name"] != leader and not r["silent"]
                                                       for r in rs) and silent(rs) == {leader})
        assert api.post("/orders", {"name": "GameStart", "quantity": 1, "type": "buy"})[0] == 200
        wait_for_system(api, lambda rs: {r["orders"] for r in rs if not r["silent"]} == {2})
        api.close()


def silent(replicas):
    return {r["name"] for r in replicas if r["silent"]}


def wait_for_system(api, check, timeout=15):
    deadline = time.monotonic() + timeout
    while not check(replicas := api.get("/system")[1]["data"]["replicas"]):
        assert time.monotonic() < deadline, replicas
        time.sleep(0.2)
    return replicas

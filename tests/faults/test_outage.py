"""Outages: a worker down or frozen, and the broker itself stopped; timed-out trades stay unexecuted."""
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from client.session import Session

BUY = {"name": "GameStart", "quantity": 2, "type": "buy"}


def assert_untouched(api):
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 100
    assert api.get("/orders/0")[0] == 404


@pytest.mark.parametrize("service, method, path", [
    ("catalog", "GET", "/stocks/GameStart"), ("order", "POST", "/orders"), ("order", "GET", "/orders/0"),
])
def test_worker_down_gives_503_or_504_within_the_timeout(stack, api, settings, service, method, path):
    stack.kill(service)
    started = time.monotonic()
    status, body, _ = api.request(method, path, body=BUY if method == "POST" else None)
    assert status in (503, 504) and body["error"]["code"] == status
    assert time.monotonic() - started < settings.rpc_timeout + 0.5


def test_trading_goes_on_while_the_catalog_is_down(stack, api):
    """The catalog only answers lookups: a trade is decided by the order stream alone."""
    stack.kill("catalog")
    assert api.post("/orders", BUY)[:2] == (200, {"data": {"transaction_number": 0}})
    stack.start("catalog")
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98


def test_trade_timed_out_while_the_order_worker_is_down_is_not_executed_later(stack, api, settings):
    stack.kill("order")
    assert api.post("/orders", BUY)[0] == 504
    time.sleep(settings.rpc_timeout)  # well past the request's expiry
    stack.start("order")
    time.sleep(settings.rpc_timeout)  # time to take the queue and catch up
    assert_untouched(api)


def test_trade_timed_out_in_a_frozen_order_worker_is_not_executed_later(stack, api, settings):
    """A frozen worker (GC pause, stalled disk...) already holds the request when it times out."""
    stack.processes["order"].send_signal(signal.SIGSTOP)
    try:
        assert api.post("/orders", BUY)[0] == 504
        time.sleep(settings.rpc_timeout / 2)
    finally:
        stack.processes["order"].send_signal(signal.SIGCONT)
    time.sleep(settings.rpc_timeout)  # time to catch up
    assert_untouched(api)


def timed_request(url, method, path, body=None):
    session, started = Session(url, timeout=30), time.monotonic()
    try:
        return (*session.request(method, path, body=body)[:2], time.monotonic() - started)
    finally:
        session.close()


@pytest.mark.outage
@pytest.mark.slow
def test_broker_outage_gives_quick_503s_then_recovers_without_restarts(rabbitmqctl, stack, api, settings):
    pids = {name: process.pid for name, process in stack.processes.items()}
    assert api.post("/orders", BUY)[0] == 200
    requests = [("GET", "/stocks/GameStart", None), ("POST", "/orders", BUY)] * 10
    try:
        subprocess.run([rabbitmqctl, "-q", "stop_app"], check=True, timeout=60)
        with ThreadPoolExecutor(len(requests)) as pool:
            replies = list(pool.map(lambda r: timed_request(stack.url, *r), requests))
    finally:
        subprocess.run([rabbitmqctl, "-q", "start_app"], check=True, timeout=60)
        stack.admin = type(stack.admin)(settings)  # the stack's own connection died with the broker
    for status, body, elapsed in replies:
        assert (status, body["error"]["code"]) == (503, 503) and elapsed < settings.rpc_timeout

    back, key = time.monotonic(), {"Idempotency-Key": "after-the-outage"}
    while api.post("/orders", BUY, headers=key)[0] != 200:
        assert time.monotonic() < back + 30, f"no recovery within 30 s:\n{stack.logs()}"
        time.sleep(0.5)
    print(f"\n{len(replies)} requests during the outage: 503 in at most {max(r[2] for r in replies):.2f} s; "
          f"trading again {time.monotonic() - back:.1f} s after start_app")
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 96
    # Every consumer of both workers is back (they retry with backoff of at most 5 s); the order
    # worker has one, as its queue has a single active consumer.
    while (stack.admin.consumers("catalog"), stack.admin.consumers("order")) != (settings.catalog_threads, 1):
        assert time.monotonic() < back + 30, "not every consumer came back"
        time.sleep(0.5)
    assert api.get("/orders/1")[1]["data"]["quantity"] == 2
    assert {name: process.pid for name, process in stack.processes.items() if process.poll() is None} == pids

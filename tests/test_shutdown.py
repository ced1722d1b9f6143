"""Graceful shutdown: SIGTERM exits 0 promptly, and trades in flight finish first."""
import csv
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from catalog_worker.store import journal_segments
from client.session import Session

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


def post(url, order=BUY, key=None):
    session = Session(url, timeout=30)
    try:
        return session.post("/orders", order, headers={"Idempotency-Key": key or uuid.uuid4().hex})[:2]
    finally:
        session.close()


def trade_ids(settings, name):
    with open(settings.data_dir / name, newline="") as f:
        return [row["trade_id"] for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", ["catalog", "order", "frontend"])
def test_sigterm_when_idle_exits_0_promptly(stack, api, name):
    assert api.post("/orders", BUY)[0] == 200  # every service has open connections
    started = time.monotonic()
    assert stack.stop(name) == {name: 0}
    assert time.monotonic() - started < 5


def test_sigterm_lets_trades_in_flight_finish(stack, settings):
    stack.processes["catalog"].send_signal(signal.SIGSTOP)  # trades now wait in the order worker
    with ThreadPoolExecutor(4) as pool:
        replies = [pool.submit(post, stack.url) for _ in range(4)]
        time.sleep(0.5)
        stack.processes["order"].send_signal(signal.SIGTERM)
        time.sleep(0.3)
        stack.processes["catalog"].send_signal(signal.SIGCONT)
        assert stack.processes.pop("order").wait(timeout=5) == 0
    numbers = sorted(reply.result()[1]["data"]["transaction_number"] for reply in replies)
    assert numbers == [0, 1, 2, 3]
    assert len(trade_ids(settings, "order_log.csv")) == 4


def test_sigterm_under_load_loses_and_duplicates_nothing(stack, settings):
    outcomes, done = [], threading.Event()

    def trade():
        while not done.is_set():
            key = uuid.uuid4().hex
            outcomes.append((key, *post(stack.url, {**BUY, "type": "sell"}, key)))  # sells never run out

    clients = [threading.Thread(target=trade) for _ in range(6)]
    for client in clients:
        client.start()
    time.sleep(1)
    assert stack.stop("order") == {"order": 0}
    done.set()
    for client in clients:
        client.join()
    time.sleep(settings.rpc_timeout)  # past the expiry of requests left in the queue
    stack.start("order")
    time.sleep(settings.rpc_timeout)  # reconciliation

    logged = trade_ids(settings, "order_log.csv")
    assert sorted(logged) == sorted(trade_ids(settings, journal_segments(settings.data_dir)[0].name))
    assert {status for _, status, _ in outcomes} <= {200, 504}
    # Exactly the trades that got a 200 are logged, once each and under their numbers; no 504 ran later.
    succeeded = {key: body["data"]["transaction_number"] for key, status, body in outcomes if status == 200}
    assert len(set(logged)) == len(logged) and dict(zip(logged, range(len(logged)))) == succeeded

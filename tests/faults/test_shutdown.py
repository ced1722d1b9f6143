"""Graceful shutdown: SIGTERM exits 0 promptly, and trades in flight finish first."""
import csv
import signal
import threading
import time
import uuid
from contextlib import contextmanager

import pytest

from client.session import Session
from harness.stack import wait_until

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


def trade_until(url, done, outcomes):
    """Place sells (they never run out), each under its own key, recording what the client saw."""
    while not done.is_set():
        key = uuid.uuid4().hex
        try:
            outcomes.append((key, *post(url, {**BUY, "type": "sell"}, key)))
        except OSError:  # the frontend is stopping or gone
            outcomes.append((key, None, None))
            time.sleep(0.05)


@contextmanager
def load(url, clients=6):
    """Client threads trading for as long as the block runs; yields their outcomes."""
    outcomes, done = [], threading.Event()
    threads = [threading.Thread(target=trade_until, args=(url, done, outcomes)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(outcomes) >= 2 * clients, 10, "the clients did not trade")
    try:
        yield outcomes
    finally:
        done.set()
        for thread in threads:
            thread.join()


def sigterm_twice(stack, name):
    """Send SIGTERM twice 50 ms apart; return the exit code and the seconds it took."""
    process, started = stack.processes.pop(name), time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15), time.monotonic() - started


def assert_no_success_lost(settings, outcomes):
    """Every trade a client saw succeed is logged once under its number; the logs agree."""
    # The catalog replica reads the same stream: its copy of the log catches up with the order worker's.
    wait_until(lambda: trade_ids(settings, "order_log.csv") == trade_ids(settings, "catalog/order_log.csv"), 10,
               "the catalog did not catch up")
    logged = trade_ids(settings, "order_log.csv")
    assert len(set(logged)) == len(logged)
    numbers = {key: number for number, key in enumerate(logged)}
    succeeded = {key: body["data"]["transaction_number"] for key, status, body in outcomes if status == 200}
    assert succeeded and all(numbers.get(key) == number for key, number in succeeded.items())
    assert {status for _, status, _ in outcomes} <= {200, 503, 504, None}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["catalog", "order", "frontend"])
def test_sigterm_twice_under_load_exits_0_and_loses_no_trade(stack, settings, name):
    with load(stack.url) as outcomes:
        code, took = sigterm_twice(stack, name)
        stack.start(name)
    assert code == 0 and took < 10
    assert_no_success_lost(settings, outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("death", [signal.SIGSTOP, signal.SIGKILL], ids=["SIGSTOP", "SIGKILL"])
@pytest.mark.parametrize("name", ["order", "frontend"])
def test_sigterm_while_the_catalog_is_dead_exits_0(stack, settings, name, death):
    with load(stack.url) as outcomes:
        stack.processes["catalog"].send_signal(death)
        time.sleep(settings.rpc_timeout)  # trades go on: they do not need the catalog
        code, took = sigterm_twice(stack, name)
        if death == signal.SIGSTOP:
            stack.processes["catalog"].send_signal(signal.SIGCONT)
        else:
            stack.processes.pop("catalog").wait()
            stack.start("catalog")
        stack.start(name)
    assert code == 0 and took < 10
    assert_no_success_lost(settings, outcomes)

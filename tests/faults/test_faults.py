"""Exactly-once trades: redelivered requests, retried HTTP requests, and services killed under load."""
import csv
import http.client
import json
import os
import random
import threading
import time
import uuid
from collections import Counter

import pika
import pytest

from bench.loads import ClientThreads
from broker.connection import parameters
from client.session import Session
from ledger.position import read_position

BUY = {"name": "GameStart", "quantity": 2, "type": "buy"}
STOCKS = ("GameStart", "FishCo", "BoarCo")


def read_csv(settings, name, missing_ok=False):
    """The rows of one of the services' CSV files, as dicts (none for a missing file if ``missing_ok``)."""
    if missing_ok and not (settings.data_dir / name).exists():
        return []
    with open(settings.data_dir / name, newline="") as f:
        return list(csv.DictReader(f))


def rpc_twice(settings, service, method, args, timeout=5):
    """Publish the same request twice onto a service's queue, as a redelivery would; return both replies."""
    replies = []
    with pika.BlockingConnection(parameters(settings)) as connection:
        channel = connection.channel()
        channel.basic_consume("amq.rabbitmq.reply-to", lambda *m: replies.append(json.loads(m[3])), auto_ack=True)
        props = pika.BasicProperties(type=method, content_type="application/json",
                                     reply_to="amq.rabbitmq.reply-to", correlation_id="same")
        for _ in range(2):
            channel.basic_publish("", settings.queue(service), json.dumps(args).encode(), props)
        deadline = time.monotonic() + timeout
        while len(replies) < 2 and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
    return replies


def test_order_worker_logs_a_redelivered_trade_once(api, settings):
    replies = rpc_twice(settings, "order", "trade", {**BUY, "trade_id": "t-1"})
    assert replies == [{"data": {"transaction_number": 0, "catalog_seq": 1}}] * 2
    assert api.get("/orders/1")[0] == 404
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98
    assert [row["trade_id"] for row in read_csv(settings, "order_log.csv")] == ["t-1"]


def test_retried_post_trades_once(api):
    key = {"Idempotency-Key": "retry-me"}
    assert api.post("/orders", BUY, headers=key)[:2] == (200, {"data": {"transaction_number": 0}})
    assert api.post("/orders", BUY, headers=key)[:2] == (200, {"data": {"transaction_number": 0}})
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98
    assert api.get("/orders/1")[0] == 404


def test_reused_key_with_another_order_is_422(api):
    key = {"Idempotency-Key": "used-once"}
    assert api.post("/orders", BUY, headers=key)[0] == 200
    status, body, _ = api.post("/orders", {**BUY, "quantity": 3}, headers=key)
    assert (status, body["error"]["code"]) == (422, 422)
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98


class Load(ClientThreads):
    """Client threads placing random trades, each retrying its own Idempotency-Key on 5xx or a lost connection."""

    def __init__(self, url, rng, clients=6, retries=8, pause=1.0):
        super().__init__([random.Random(rng.random()) for _ in range(clients)])
        self.url, self.retries, self.pause = url, retries, pause
        self.attempted, self.succeeded, self.uncertain, self.statuses = [], {}, [], Counter()
        self.retried, self.successes = 0, []  # requests sent again after a 5xx; when trades succeeded
        self._lock = threading.Lock()

    def _trade(self, rng):
        session = Session(self.url, timeout=10)
        while not self.done.is_set():
            key, order = uuid.uuid4().hex, {"name": rng.choice(STOCKS), "quantity": rng.randint(1, 3),
                                            "type": rng.choice(("buy", "sell"))}
            self.attempted.append(key)
            for _ in range(self.retries):
                try:
                    status, body, _ = session.post("/orders", order, headers={"Idempotency-Key": key})
                except (OSError, http.client.HTTPException) as exc:
                    session.close()
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[status] += 1
                if status == 200:
                    self.succeeded[key] = (order, body["data"]["transaction_number"])
                    self.successes.append(time.monotonic())
                if isinstance(status, int) and status < 500:
                    break
                self.retried += 1
                time.sleep(self.pause)
            else:
                self.uncertain.append(key)
        session.close()


def kill_and_restart(stack, rng, rounds):
    """SIGKILL each service ``rounds`` times at random moments, restarting it after a random outage."""
    kills = Counter()
    for _ in range(rounds):
        for name in rng.sample(list(stack.processes), 3):
            time.sleep(rng.uniform(0.3, 1.5))
            stack.kill(name)
            kills[name] += 1
            time.sleep(rng.uniform(0, 2 * stack.settings.rpc_timeout))  # sometimes past the timeouts
            stack.start(name)
    return kills


def wait_until_replicated(settings, replicas=(".", "catalog"), timeout=20):
    """Poll until the replicas (data directories under the stack's) hold the same order log and have
    saved the stocks after it; return the seconds taken. A missing log counts as empty: a replica
    restarted on an empty directory may not have made it yet."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        logs = {(settings.data_dir / replica / "order_log.csv").read_bytes()
                if (settings.data_dir / replica / "order_log.csv").exists() else b"" for replica in replicas}
        positions = {(read_position(settings.data_dir / replica / "stream_position") or (0, 0))[1]
                     for replica in replicas}
        if len(logs) == 1 and positions == {max(logs.pop().count(b"\n") - 1, 0)}:
            break
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.slow
def test_exactly_once_while_services_are_killed(stack, settings):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(10**6)))
    print(f"\nfault injection seed {seed} (rerun with FAULT_SEED={seed}; thread timing still varies)")
    rng, started = random.Random(seed), time.monotonic()
    # A small window, so ids leave it while services are killed.
    stack.env.update(IDEMPOTENCY_KEYS="2000")
    assert stack.stop("catalog", "order") == {"catalog": 0, "order": 0}
    stack.start("catalog", "order")
    with Load(stack.url, rng) as load:
        kills = kill_and_restart(stack, rng, rounds=3)
    replicating = wait_until_replicated(settings)
    assert stack.stop() == {"catalog": 0, "order": 0, "frontend": 0}

    logs = "".join(path.read_text(errors="replace") for path in stack.log_dir.glob("*.log"))
    print(f"kills {dict(kills)}; trades attempted {len(load.attempted)}, succeeded {len(load.succeeded)}, "
          f"uncertain {len(load.uncertain)}; statuses {dict(load.statuses)}; order log "
          f"{len(read_csv(settings, 'order_log.csv'))}; catalog caught up {replicating:.1f} s after the load; "
          f"{logs.count('Traceback')} tracebacks; {time.monotonic() - started:.1f} s in all")
    assert not set(load.statuses) & {400, 404, 422}, load.statuses
    check_invariants(settings, load.succeeded, replicas=(".", "catalog"))
    # The catalog restarted from its files agrees with them.
    stack.start("catalog", "frontend")
    session, stocks = Session(stack.url), read_position(settings.data_dir / "catalog" / "stream_position")[3]
    assert all(session.get(f"/stocks/{stock.name}")[1]["data"]["quantity"] == stock.quantity for stock in stocks)


def check_invariants(settings, succeeded, replicas=(".",), reused_keys=0):
    """The files of a stopped stack's ``replicas`` (data directories under its own) hold exactly the
    ``succeeded`` trades (key -> (order, number)) and those whose outcome the clients never learned,
    each once (``reused_keys`` ids retried after the idempotency window are two trades), and
    stocks that are the initial ones plus those trades."""
    logs = [read_csv(settings, f"{replica}/order_log.csv") for replica in replicas]
    log = logs[0]
    assert all(other == log for other in logs), "the replicas' order logs differ"
    # The order log: numbers 0..n-1 in order, one line per trade id.
    assert [int(row["transaction_number"]) for row in log] == list(range(len(log)))
    assert len({row["trade_id"] for row in log}) == len(log) - reused_keys
    # Every trade a client saw succeed is logged under the number it was given, as it was placed.
    by_key = {row["trade_id"]: row for row in log}
    for key, (order, number) in succeeded.items():
        row = by_key[key]
        assert (int(row["transaction_number"]), row["stock_name"], row["order_type"], int(row["trade_quantity"])) == (
            number, order["name"], order["type"], order["quantity"])
    # Each replica's stocks (saved with its position) are the order log's trades.
    for replica in replicas:
        _, applied, _, stocks = read_position(settings.data_dir / replica / "stream_position")
        assert applied == len(log), f"{replica} saved its stocks after {applied} of {len(log)} orders"
        for stock in stocks:
            trades = [row for row in log if row["stock_name"] == stock.name]
            quantity = 100 + sum(int(r["trade_quantity"]) * (1 if r["order_type"] == "sell" else -1) for r in trades)
            assert (stock.quantity, stock.trading_volume) == (quantity, sum(int(r["trade_quantity"]) for r in trades))

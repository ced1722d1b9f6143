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
from catalog_worker.store import journal_segments
from client.session import Session

BUY = {"name": "GameStart", "quantity": 2, "type": "buy"}
STOCKS = ("GameStart", "FishCo", "BoarCo")


def read_csv(settings, name, missing_ok=False):
    """The rows of one of the services' CSV files, as dicts (none for a missing file if ``missing_ok``)."""
    if missing_ok and not (settings.data_dir / name).exists():
        return []
    with open(settings.data_dir / name, newline="") as f:
        return list(csv.DictReader(f))


def read_journal(settings):
    """The rows of the catalog journal's segments still on disk, oldest first."""
    return [row for path in journal_segments(settings.data_dir) for row in read_csv(settings, path.name)]


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


def test_catalog_applies_a_redelivered_trade_once(api, settings):
    replies = rpc_twice(settings, "catalog", "trade", {**BUY, "trade_id": "t-1"})
    assert replies == [{"data": {"seq": 1, "trade_id": "t-1", "name": "GameStart", "type": "buy", "quantity": 2}}] * 2
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98
    assert [row["trade_id"] for row in read_journal(settings)] == ["t-1"]


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


def wait_until_reconciled(settings, timeout=20, order_log="order_log.csv"):
    """Poll until the order log holds every trade the catalog journalled; return the seconds taken.
    A missing log counts as empty: a replica restarted on an empty directory may not have made it yet."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        log, journal = read_csv(settings, order_log, missing_ok=True), read_journal(settings)
        if len(log) == (int(journal[-1]["seq"]) if journal else 0):
            break
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.slow
def test_exactly_once_while_services_are_killed(stack, settings):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(10**6)))
    print(f"\nfault injection seed {seed} (rerun with FAULT_SEED={seed}; thread timing still varies)")
    rng, started = random.Random(seed), time.monotonic()
    # Small journal segments and window, so checkpoints rotate and delete segments while services are killed.
    stack.env.update(JOURNAL_SEGMENT_TRADES="50", IDEMPOTENCY_KEYS="2000")
    assert stack.stop("catalog", "order") == {"catalog": 0, "order": 0}
    stack.start("catalog", "order")
    with Load(stack.url, rng) as load:
        kills = kill_and_restart(stack, rng, rounds=3)
    reconciling = wait_until_reconciled(settings)
    assert stack.stop() == {"catalog": 0, "order": 0, "frontend": 0}

    logs = "".join(path.read_text(errors="replace") for path in stack.log_dir.glob("*.log"))
    print(f"kills {dict(kills)}; trades attempted {len(load.attempted)}, succeeded {len(load.succeeded)}, "
          f"uncertain {len(load.uncertain)}; statuses {dict(load.statuses)}; order log "
          f"{len(read_csv(settings, 'order_log.csv'))}; journal segments {len(journal_segments(settings.data_dir))}; "
          f"reconciled by the order worker "
          f"{logs.count('reconciled trade')}; converged {reconciling:.1f} s after the load; "
          f"{time.monotonic() - started:.1f} s in all")
    assert not set(load.statuses) & {400, 404, 422}, load.statuses
    check_invariants(settings, load.succeeded)
    # The catalog restarted from its files agrees with them.
    stack.start("catalog", "frontend")
    session, stocks = Session(stack.url), read_csv(settings, "stock_db.csv")
    assert all(session.get(f"/stocks/{row['name']}")[1]["data"]["quantity"] == int(row["quantity"]) for row in stocks)


def check_invariants(settings, succeeded, order_log="order_log.csv", reused_keys=0):
    """The files of a stopped stack hold exactly the ``succeeded`` trades (key -> (order, number)) and
    those whose outcome the clients never learned, each once (``reused_keys`` ids retried after the
    idempotency window are two trades)."""
    log, journal = read_csv(settings, order_log), read_journal(settings)
    # The order log: numbers 0..n-1 in order, one line per trade id, one per trade the catalog applied.
    assert [int(row["transaction_number"]) for row in log] == list(range(len(log)))
    assert len({row["trade_id"] for row in log}) == len(log) - reused_keys
    assert sorted(int(row["catalog_seq"]) for row in log) == list(range(1, len(log) + 1))
    # The journal segments left after compaction are the newest trades, as the order log has them.
    assert [int(row["seq"]) for row in journal] == list(range(len(log) - len(journal) + 1, len(log) + 1))
    by_seq = {int(row["catalog_seq"]): row["trade_id"] for row in log}
    assert all(by_seq[int(row["seq"])] == row["trade_id"] for row in journal)
    # Every trade a client saw succeed is logged under the number it was given, as it was placed.
    by_key = {row["trade_id"]: row for row in log}
    for key, (order, number) in succeeded.items():
        row = by_key[key]
        assert (int(row["transaction_number"]), row["stock_name"], row["order_type"], int(row["trade_quantity"])) == (
            number, order["name"], order["type"], order["quantity"])
    # Each stock's quantity and volume, in the snapshot and the journal, are the order log's trades.
    last = {row["name"]: row for row in journal}
    for stock in read_csv(settings, "stock_db.csv"):
        trades = [row for row in log if row["stock_name"] == stock["name"]]
        quantity = 100 + sum(int(r["trade_quantity"]) * (1 if r["order_type"] == "sell" else -1) for r in trades)
        volume = sum(int(r["trade_quantity"]) for r in trades)
        assert (int(stock["quantity"]), int(stock["trading_volume"])) == (quantity, volume)
        if stock["name"] in last:
            assert (int(last[stock["name"]]["quantity_after"]), int(last[stock["name"]]["volume_after"])) == (
                quantity, volume)

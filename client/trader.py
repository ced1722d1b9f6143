"""One trading session: random lookups and trades on one keep-alive connection, then a check of every order."""
import http.client
import random
import time
import uuid

from client.session import Session

DEFAULT_STOCKS = (
    "GameStart", "FishCo", "BoarCo", "MenhirCo", "AsterixCorp",
    "ObelixInc", "DogmatixLtd", "Getafix", "Vitalstatix", "Cacofonix",
)
ORDER_FIELDS = ("number", "name", "type", "quantity")


class Recorder:
    """Times requests and tallies their statuses and cache hits per request type."""

    def __init__(self):
        self.records = {}
        self.first_start = {}

    def call(self, kind, send, *args):
        """Send one request through ``send``; return ``(status, body)``, status None on a transport error."""
        record = self.records.setdefault(kind, {"latencies": [], "statuses": {}, "seconds": 0.0, "hits": 0})
        start = time.perf_counter()
        self.first_start.setdefault(kind, start)
        try:
            status, body, headers = send(*args)
            code = str(status)
            record["hits"] += headers.get("X-Cache") == "hit"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            status, body, code = None, None, type(exc).__name__
        end = time.perf_counter()
        record["latencies"].append((end - start) * 1000)
        record["statuses"][code] = record["statuses"].get(code, 0) + 1
        record["seconds"] = end - self.first_start[kind]
        return status, body


def order_mismatches(placed, replies):
    """Describe each placed order whose ``GET /orders/<n>`` reply ``(status, body)`` differs from what was sent."""
    problems = []
    for order in placed:
        status, body = replies[order["number"]]
        if status != 200:
            problems.append(f"order {order['number']}: lookup returned {status}")
            continue
        got = (body or {}).get("data") or {}
        diffs = [f"{key} {got.get(key)!r} != {order[key]!r}" for key in ORDER_FIELDS if got.get(key) != order[key]]
        if diffs:
            problems.append(f"order {order['number']}: " + ", ".join(diffs))
    return problems


def loops(iterations, duration):
    """Yield once per loop until ``iterations`` loops are done or, if given, ``duration`` seconds have passed."""
    if duration is None:
        yield from range(iterations)
        return
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        yield


def play(seed, url, probability, stocks=DEFAULT_STOCKS, iterations=None, duration=None, tick=lambda: None):
    """Trade for ``iterations`` loops or ``duration`` seconds; return ``(records per kind, mismatches)``."""
    rng = random.Random(seed)
    session = Session(url)
    recorder = Recorder()
    placed = []
    for _ in loops(iterations, duration):
        name = rng.choice(stocks)
        status, body = recorder.call("lookup", session.get, f"/stocks/{name}")
        if status == 200 and body["data"]["quantity"] > 0 and rng.random() < probability:
            order = {"name": name, "type": rng.choice(("buy", "sell")), "quantity": rng.randint(1, 5)}
            key = {"Idempotency-Key": str(uuid.uuid4())}
            status, body = recorder.call("trade", session.post, "/orders", order, key)
            if status == 200:
                placed.append({"number": body["data"]["transaction_number"], **order})
        tick()
    replies = {o["number"]: recorder.call("order query", session.get, f"/orders/{o['number']}") for o in placed}
    session.close()
    return recorder.records, order_mismatches(placed, replies)

"""The history of a fault-injection run: every trade the clients sent, every answer, and when.

An operation is one trade under one Idempotency-Key: ``{"key", "order", "attempts"}``, each attempt
``[start, end, status, number]`` in seconds since the run began (``status`` is the HTTP status or
"transport"; ``number`` the transaction number of a 200). A 5xx or a lost connection says nothing
about whether the trade happened, so the client sends it again with the same key, as a real client
should; now and then it also sends a trade that succeeded once more, to check the retry window.
"""
import http.client
import uuid

from bench.loads import ClientThreads
from client.session import Session
from client.trader import DEFAULT_STOCKS

TRANSPORT = "transport"


def outcome(operation):
    """"ok" (some attempt got a 200), "refused" (the last answer was a 4xx) or "unknown" (it may have happened)."""
    statuses = [attempt[2] for attempt in operation["attempts"]]
    if 200 in statuses:
        return "ok"
    if isinstance(statuses[-1], int) and 400 <= statuses[-1] < 500:
        return "refused"
    return "unknown"


def acknowledged(operation):
    """When the client first learned that the trade happened, and its number; None if it never did."""
    return next(((end, number) for _, end, status, number in operation["attempts"] if status == 200), None)


def retryable(status):
    return status == TRANSPORT or status >= 500


class Traders(ClientThreads):
    """Client threads trading until stopped, each on its own keep-alive session; ``history`` is every
    operation, appended once it is over. ``clock()`` gives the run's time; a trade is sent again with
    its key for up to ``patience`` seconds."""

    def __init__(self, url, rngs, clock, patience=30.0, pause=0.1, duplicates=0.05):
        super().__init__(rngs)
        self.url, self.clock, self.patience, self.pause, self.duplicates = url, clock, patience, pause, duplicates
        self.history = []
        self.last_success = float("-inf")  # when a trade last got a 200

    def _trade(self, rng):
        session = Session(self.url, timeout=10)
        while not self.done.is_set():
            # A buy, then a sell of the same shares, so no stock runs out.
            order = {"name": rng.choice(DEFAULT_STOCKS), "quantity": rng.randint(1, 5)}
            for side in ("buy", "sell"):
                self.history.append(self._operation(session, rng, {**order, "type": side}))
        session.close()

    def _operation(self, session, rng, order):
        operation = {"key": uuid.uuid4().hex, "order": order, "attempts": []}
        first = self.clock()
        while True:
            status = self._attempt(session, operation)
            if not retryable(status) or self.clock() - first > self.patience:
                break
            self.done.wait(self.pause)
        if status == 200 and rng.random() < self.duplicates:
            self._attempt(session, operation)
        return operation

    def _attempt(self, session, operation):
        start, number = self.clock(), None
        try:
            status, body, _ = session.post("/orders", operation["order"],
                                           headers={"Idempotency-Key": operation["key"]})
            if status == 200:
                number = body["data"]["transaction_number"]
                self.last_success = self.clock()
        except (OSError, http.client.HTTPException, ValueError):
            session.close()
            status = TRANSPORT
        operation["attempts"].append([start, self.clock(), status, number])
        return status

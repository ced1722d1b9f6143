"""What the page shows of the system: the order replicas as they announce themselves, and the
trades this frontend answered over the last minute."""
import collections
import statistics
import threading
import time

from trading.status import ORDER_STATUS_EVERY, parse_order_status

WINDOW = 60  # seconds of trades kept
SILENT_AFTER = 3 * ORDER_STATUS_EVERY  # a replica not heard for this long has stopped, or is cut off


class SystemView:
    """Each replica's last ``order.status`` with when it came, and this frontend's trade latencies.

    An event source's listener: like the stock board it trusts events only while their connection
    is up, and forgets the replicas on (re)connect and loss, so a replica shows only once it has
    announced itself again.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._replicas = {}  # replica id -> (status, when heard)
        self._trades: collections.deque[tuple[float, float]] = collections.deque()  # (when, seconds), oldest first
        self._lock = threading.Lock()

    def on_event(self, kind, event):
        """Keep an order.status event; anything else or malformed is ignored."""
        if (status := parse_order_status(kind, event)) is not None:
            with self._lock:
                self._replicas[status["replica"]] = (status, self.clock())

    def on_connected(self):
        self._forget_replicas()

    def on_disconnected(self):
        self._forget_replicas()

    def _forget_replicas(self):
        with self._lock:
            self._replicas.clear()

    def trade_answered(self, seconds):
        """Count a trade this frontend answered with 200, and the time it took."""
        now = self.clock()
        with self._lock:
            self._trades.append((now, seconds))
            self._forget_before(now - WINDOW)

    def snapshot(self):
        """The replicas by id, with ``silent`` and seconds since heard; trades per second over the last
        minute (oldest second first) and their median latency in milliseconds (None without trades)."""
        now = self.clock()
        with self._lock:
            self._forget_before(now - WINDOW)
            replicas = [{**status, "name": f"order-{replica}", "heard_s": round(now - heard, 1),
                         "silent": now - heard > SILENT_AFTER}
                        for replica, (status, heard) in sorted(self._replicas.items())]
            trades = list(self._trades)
        per_second = [0] * WINDOW
        for when, _ in trades:
            per_second[min(WINDOW - 1, int(WINDOW - (now - when)))] += 1
        p50 = statistics.median(seconds for _, seconds in trades) * 1000 if trades else None
        return {"replicas": replicas,
                "trades": {"per_second": per_second, "p50_ms": p50 and round(p50, 2), "count": len(trades)}}

    def _forget_before(self, oldest):
        while self._trades and self._trades[0][0] < oldest:
            self._trades.popleft()

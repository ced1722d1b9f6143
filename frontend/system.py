"""What the page shows of the system: the order replicas as they announce themselves, and the
trades this frontend answered over the last minute."""
import collections
import statistics
import threading
import time

from broker.events import ORDER_STATUS, ORDER_STATUS_EVERY

WINDOW = 60  # seconds of trades kept
SILENT_AFTER = 3 * ORDER_STATUS_EVERY  # a replica not heard for this long has stopped, or is cut off
STATUS_FIELDS = {"replica": int, "leading": bool, "position": int, "orders": int}


class SystemView:
    """Each replica's last ``order.status`` with when it came, and this frontend's trade latencies.

    Like the stock board it trusts events only while their connection is up: ``reset`` forgets the
    replicas on (re)connect and loss, so a replica shows only once it has announced itself again.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._replicas = {}  # replica id -> (status, when heard)
        self._trades = collections.deque()  # (when answered, seconds taken), oldest first
        self._lock = threading.Lock()

    def on_event(self, kind, event):
        """Keep an order.status event; anything else or malformed is ignored."""
        if kind != ORDER_STATUS or not all(type(event.get(key)) is kind_ for key, kind_ in STATUS_FIELDS.items()):
            return
        with self._lock:
            self._replicas[event["replica"]] = ({key: event[key] for key in STATUS_FIELDS}, self.clock())

    def reset(self, _enabled):
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

"""An LRU cache of stock lookups, kept fresh by the catalog's stock.changed events."""
import threading
from collections import OrderedDict

from broker import events
from broker.metrics import CACHE_HITS, CACHE_MISSES

LOOKUP_FIELDS = ("name", "price", "quantity")


class LookupCache:
    """Lookup answers by stock name, ordered by the catalog's trade sequence numbers.

    ``seen[name]`` is the newest seq this frontend knows of for a stock, and survives eviction:
    an answer older than it (a late event, or a lookup that was in flight during a trade) is
    dropped, so nothing overwrites a newer value. Disabled (every get misses) until the events
    connection is up; ``reset`` clears everything on (re)connect and loss, and bumps ``epoch`` so
    that a lookup started before it cannot fill the cache after it.
    """

    def __init__(self, size):
        self.size = size
        self.enabled = False
        self.epoch = 0
        self._entries = OrderedDict()  # name -> (seq, answer)
        self._seen = {}
        self._lock = threading.Lock()

    def get(self, name):
        """The cached answer for ``name``, or None."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                CACHE_MISSES.inc()
                return None
            CACHE_HITS.inc()
            self._entries.move_to_end(name)
            return entry[1]

    def fill(self, name, answer, seq, epoch):
        """Cache a lookup ``answer`` as of ``seq``, made during ``epoch``, unless it is outdated."""
        with self._lock:
            if not self.enabled or epoch != self.epoch or seq < self._seen.get(name, 0):
                return
            self._seen[name] = seq
            self._entries[name] = (seq, answer)
            self._entries.move_to_end(name)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def changed(self, name, seq, answer=None):
        """The stock changed at ``seq``: update its entry to ``answer``, or evict it without one."""
        with self._lock:
            if seq <= self._seen.get(name, 0):
                return
            self._seen[name] = seq
            if name in self._entries:
                if answer is None:
                    del self._entries[name]
                else:
                    self._entries[name] = (seq, answer)

    def reset(self, enabled):
        """Forget everything; serve from the cache again only if ``enabled``."""
        with self._lock:
            self._entries.clear()
            self._seen.clear()
            self.epoch += 1
            self.enabled = enabled and self.size > 0

    def on_event(self, kind, event):
        """Apply a stock.changed event; anything else or malformed is ignored."""
        if kind != events.STOCK_CHANGED:
            return
        try:
            name, seq = event["name"], event["seq"]
            answer = {key: event[key] for key in LOOKUP_FIELDS}
        except KeyError:
            return
        if isinstance(name, str) and type(seq) is int:
            self.changed(name, seq, answer)


def watch(settings, *views):
    """A started Subscriber that keeps each view (``on_event``, ``reset``) of the catalog and the
    order replicas fresh, trusting it only while connected."""
    def on_event(kind, event):
        for view in views:
            view.on_event(kind, event)

    def reset(enabled):
        for view in views:
            view.reset(enabled)

    return events.Subscriber(settings, "frontend-events", on_event, keys=("stock.#", events.ORDER_STATUS),
                             on_connected=lambda: reset(True), on_disconnected=lambda: reset(False)).start()

"""An LRU cache of stock lookups, kept fresh by the catalog's stock.changed events."""
import threading
from collections import OrderedDict

from runtime.metrics import CACHE_HITS, CACHE_MISSES
from trading.stocks import parse_stock_changed

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

    def newest(self, name=None):
        """The newest seq known here of the stock ``name`` (of any stock without one): what a catalog
        replica must have applied before it answers, so no client reads older than its own trade."""
        with self._lock:
            return self._seen.get(name, 0) if name else max(self._seen.values(), default=0)

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
        stock = parse_stock_changed(kind, event)
        if stock is not None:
            self.changed(stock["name"], stock["seq"], {key: stock[key] for key in LOOKUP_FIELDS})


class EventViews:
    """The views of the catalog (``on_event``, ``reset``) an event source keeps fresh: a listener
    that trusts them only while the source is connected."""

    def __init__(self, *views):
        self.views = views

    def on_event(self, kind, event):
        for view in self.views:
            view.on_event(kind, event)

    def on_connected(self):
        for view in self.views:
            view.reset(True)

    def on_disconnected(self):
        for view in self.views:
            view.reset(False)

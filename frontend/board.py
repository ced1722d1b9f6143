"""The stock board: every stock with its trading volume, kept fresh by stock.changed events.

The web page polls ``GET /stocks`` with the ETag of what it shows; while the events connection is
up the answer, or a 304, comes from memory, so a page costs the workers nothing between trades.
"""
import hashlib
import json
import threading

from trading.stocks import STOCK_FIELDS, parse_stock_changed

BOARD_FIELDS = ("name", "price", "quantity", "trading_volume")


class StockBoard:
    """The listing of every stock, as ``(etag, JSON body)``, built from the catalog and events.

    Like the lookup cache it is trusted only while the events connection is up: ``reset`` drops
    it on (re)connect and loss, and ``epoch`` keeps a listing fetched before a reset out of it.
    Each stock keeps the newest ``seq`` seen, so a late event or listing never overwrites it.
    """

    def __init__(self):
        self.enabled = False
        self.epoch = 0
        self._stocks = {}  # name -> event-shaped dict, with seq
        self._listing = None
        self._lock = threading.Lock()

    def listing(self):
        """``(etag, body)`` of every stock, or None when the catalog must be asked."""
        with self._lock:
            return self._listing

    def fill(self, stocks, epoch):
        """Take the catalog's ``stocks`` (with seq), fetched during ``epoch``; return the listing."""
        with self._lock:
            if not self.enabled or epoch != self.epoch:
                return render(stocks)
            for stock in stocks:
                self._keep_newest(stock)
            self._listing = render(self._stocks.values())
            return self._listing

    def reset(self, enabled):
        """Forget everything; serve from memory again only if ``enabled``."""
        with self._lock:
            self._stocks.clear()
            self._listing = None
            self.epoch += 1
            self.enabled = enabled

    def on_event(self, kind, event):
        """Apply a stock.changed event; anything else or malformed is ignored."""
        stock = parse_stock_changed(kind, event)
        if stock is None:
            return
        with self._lock:
            if self._keep_newest(stock) and self._listing is not None:
                self._listing = render(self._stocks.values())

    def _keep_newest(self, stock):
        known = self._stocks.get(stock["name"])
        if known is not None and known["seq"] >= stock["seq"]:
            return False
        self._stocks[stock["name"]] = {key: stock[key] for key in STOCK_FIELDS}
        return True


def render(stocks):
    """The ``(etag, body)`` of a listing: stocks sorted by name, the ETag a digest of the body."""
    rows = sorted(({key: s[key] for key in BOARD_FIELDS} for s in stocks), key=lambda s: s["name"])
    body = json.dumps({"data": rows}, separators=(",", ":")).encode()
    return hashlib.blake2b(body, digest_size=12).hexdigest(), body

"""The stock catalog: an in-memory table, a CSV snapshot and a journal of applied trades in segments."""
import itertools
import logging
import sys
import threading
import time
from typing import NamedTuple

from broker import RpcError
from runtime.lifecycle import Loop
from storage.files import AppendLog, DiskFull, iter_rows, read_table, replace_atomically
from storage.window import KeyWindow

log = logging.getLogger(__name__)

# Every row of the snapshot carries the journal sequence number it includes (the same on each row).
STOCK_COLUMNS = ("name", "price", "quantity", "trading_volume", "journal_seq")
JOURNAL_COLUMNS = ("seq", "trade_id", "name", "type", "quantity", "quantity_after", "volume_after")
JOURNAL_SEGMENT = "catalog_journal-{:012d}.csv"  # named after the first sequence number it may hold
DEFAULT_PRICES = {
    "GameStart": 15.99, "FishCo": 11.50, "BoarCo": 22.75, "MenhirCo": 8.40, "AsterixCorp": 31.20,
    "ObelixInc": 27.05, "DogmatixLtd": 5.60, "Getafix": 44.10, "Vitalstatix": 19.95, "Cacofonix": 3.25,
}
DEFAULT_QUANTITY = 100
SNAPSHOT_INTERVAL = 1.0


class Stock(NamedTuple):
    """A stock as of trade ``seq`` (its last trade, or the snapshot's when it had none since)."""
    name: str
    price: float
    quantity: int
    trading_volume: int
    seq: int = 0


class Trade(NamedTuple):
    """A trade the catalog applied; ``seq`` numbers applied trades 1, 2, 3… without gaps."""
    seq: int
    trade_id: str
    name: str
    type: str
    quantity: int


def journal_segments(data_dir):
    """The journal's segment files, oldest first."""
    return sorted(data_dir.glob(JOURNAL_SEGMENT.replace("{:012d}", "*")))


class CatalogStore(Loop):
    """Lookups and atomic trades over the catalog, deduplicated by trade id within a window.

    A trade is durable once its journal line is fsynced. A thread of its own (from ``start`` to
    ``stop``) then checkpoints, at most once a second, and ``stop`` once more: it writes the snapshot
    (stocks plus the sequence number they include) atomically, starts a new journal segment once the current one holds
    ``segment_trades`` trades, and deletes segments that are both in the snapshot and older than
    the idempotency window. Start-up reads the snapshot and the remaining segments, applying only
    the lines after the snapshot; each step leaves files a restart can read, whenever it is killed.
    Records are immutable and replaced only after the journal write, so lookups read committed
    state without waiting for a writer's fsync; trades serialize on one lock.
    """

    def __init__(self, data_dir, window_seconds=24 * 3600, window_keys=500_000, segment_trades=100_000):
        super().__init__("checkpoint", daemon=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir, self.window_keys, self.segment_trades = data_dir, window_keys, segment_trades
        self.csv_path = data_dir / "stock_db.csv"
        if not self.csv_path.exists():
            log.info("creating %s with the default stocks", self.csv_path)
            replace_atomically(self.csv_path, STOCK_COLUMNS,
                               [(n, p, DEFAULT_QUANTITY, 0, 0) for n, p in DEFAULT_PRICES.items()])
        rows = read_table(self.csv_path, STOCK_COLUMNS)
        self._seq = snapshot_seq = max((int(row[4]) for row in rows), default=0)
        # Each stock is as of the snapshot's sequence number, which is all a reader needs to order it.
        self._stocks = {row[0]: Stock(row[0], float(row[1]), int(row[2]), int(row[3]), snapshot_seq)
                        for row in rows}
        self._window = KeyWindow(window_seconds, window_keys)
        segments = journal_segments(data_dir) or [data_dir / JOURNAL_SEGMENT.format(self._seq + 1)]
        self._journal = AppendLog.open(segments[-1], JOURNAL_COLUMNS)
        for path in segments:
            self._segment_trades = self._replay(iter_rows(path, JOURNAL_COLUMNS), snapshot_seq)
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._dirty.set()  # fold what was replayed into the snapshot

    def lookup(self, name):
        """The stock called ``name``; raise a 404 RpcError if there is none."""
        stock = self._stocks.get(name)
        if stock is None:
            raise RpcError(404, f"stock {name!r} not found")
        return stock

    def trade(self, trade_id, name, order_type, quantity, after_seq=0):
        """Apply a buy or sell once per trade id; a repeated id returns the original Trade, unless its
        ``seq`` is at most ``after_seq``: the order log numbered that one and has forgotten its id."""
        with self._lock:
            known = self._window.get(trade_id, time.time())
            if known is not None and known.seq > after_seq:
                return known
            stock = self.lookup(name)
            change = -quantity if order_type == "buy" else quantity
            if stock.quantity + change < 0:
                raise RpcError(409, f"insufficient quantity of {name}: {stock.quantity} available")
            trade = Trade(self._seq + 1, trade_id, stock.name, sys.intern(order_type), quantity)
            after = stock._replace(quantity=stock.quantity + change,
                                   trading_volume=stock.trading_volume + quantity, seq=trade.seq)
            # The journal line is the commit point (a full disk raises DiskFull here, changing nothing).
            self._journal.append((*trade, after.quantity, after.trading_volume))
            self._seq, self._segment_trades = trade.seq, self._segment_trades + 1
            self._stocks[name] = after
            self._window.add(trade_id, trade, time.time())
            self._dirty.set()
            return trade

    def stocks(self):
        """Every stock, in catalog order."""
        return list(self._stocks.values())

    def trades_after(self, seq):
        """Applied trades still in the window with a sequence number above ``seq``, oldest first."""
        with self._lock:
            newer = list(itertools.takewhile(lambda trade: trade.seq > seq, self._window.newest()))
        return newer[::-1]

    def checkpoint(self):
        """Write the snapshot, rotate the journal if its segment is full, delete segments no longer needed."""
        with self._lock:
            stocks, seq = list(self._stocks.values()), self._seq
            if self._segment_trades >= self.segment_trades:
                # The new segment exists before any trade goes to it; older ones stay until folded.
                journal = AppendLog.open(self.data_dir / JOURNAL_SEGMENT.format(seq + 1), JOURNAL_COLUMNS)
                self._journal.close()
                self._journal, self._segment_trades = journal, 0
        replace_atomically(self.csv_path, STOCK_COLUMNS, [(*stock[:4], seq) for stock in stocks])
        segments = journal_segments(self.data_dir)
        for path, following in itertools.pairwise(segments):
            last_seq = int(following.stem.rpartition("-")[2]) - 1
            if last_seq > min(seq, self._seq - self.window_keys):
                break
            path.unlink()

    def stop(self):
        """Stop the checkpoint thread, write the final checkpoint and close the journal."""
        super().stop()
        try:
            self.checkpoint()
        except DiskFull:
            log.warning("final snapshot not written (disk full); the journal holds every trade")
        self._journal.close()

    def _replay(self, rows, snapshot_seq):
        """Apply journal lines newer than the snapshot and remember their trade ids; return how many lines."""
        lines = 0
        for seq, trade_id, name, order_type, quantity, quantity_after, volume_after in rows:
            stock = self._stocks[name]
            trade = Trade(int(seq), trade_id, stock.name, sys.intern(order_type), int(quantity))
            if trade.seq > snapshot_seq:
                # Journal lines hold absolute values, so the last one of a stock is its state.
                self._stocks[name] = stock._replace(quantity=int(quantity_after), trading_volume=int(volume_after),
                                                    seq=trade.seq)
                self._seq = trade.seq
            self._window.add(trade_id, trade, time.time())  # the journal has no times: counted from now
            lines += 1
        return lines

    def wake(self):
        self._dirty.set()

    def run(self):
        """Checkpoint whenever trades were applied, at most once a second."""
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self.stopping.is_set():
                return
            try:
                self.checkpoint()
            except DiskFull:
                self._dirty.set()  # the disk is full (logged once by storage): try again later
            # At most one checkpoint a second: its fsyncs would otherwise queue up behind, and
            # delay, the journal fsyncs of the trades that follow.
            self.stopping.wait(SNAPSHOT_INTERVAL)

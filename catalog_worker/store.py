"""The stock catalog: an in-memory table, a CSV snapshot and a journal of applied trades."""
import logging
import threading
from typing import NamedTuple

from broker import RpcError
from broker.storage import AppendLog, read_table, replace_atomically

log = logging.getLogger(__name__)

STOCK_COLUMNS = ("name", "price", "quantity", "trading_volume")
JOURNAL_COLUMNS = ("seq", "trade_id", "name", "type", "quantity", "quantity_after", "volume_after")
DEFAULT_PRICES = {
    "GameStart": 15.99, "FishCo": 11.50, "BoarCo": 22.75, "MenhirCo": 8.40, "AsterixCorp": 31.20,
    "ObelixInc": 27.05, "DogmatixLtd": 5.60, "Getafix": 44.10, "Vitalstatix": 19.95, "Cacofonix": 3.25,
}
DEFAULT_QUANTITY = 100
SNAPSHOT_INTERVAL = 1.0


class Stock(NamedTuple):
    """A stock; ``seq`` is the last trade that changed it (0: none since the snapshot), not stored."""
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


class CatalogStore:
    """Lookups and atomic trades over the catalog, deduplicated by trade id.

    A trade is durable once its journal line is fsynced; the CSV snapshot is then replaced
    atomically by a background thread, at most once a second and at close, which keeps the
    rewrite off the trade's path. Records are immutable and replaced only after the
    journal write, so lookups read committed state without waiting for a writer's fsync;
    trades serialize on one lock.
    """

    def __init__(self, data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = data_dir / "stock_db.csv"
        if not self.csv_path.exists():
            log.info("creating %s with the default stocks", self.csv_path)
            replace_atomically(self.csv_path, STOCK_COLUMNS,
                               [(n, p, DEFAULT_QUANTITY, 0) for n, p in DEFAULT_PRICES.items()])
        self._stocks = {row[0]: Stock(row[0], float(row[1]), int(row[2]), int(row[3]))
                        for row in read_table(self.csv_path, STOCK_COLUMNS)}
        self._journal, rows = AppendLog.open(data_dir / "catalog_journal.csv", JOURNAL_COLUMNS)
        self._trades, self._applied = {}, []
        for row in rows:
            self._replay(*row)
        self._lock = threading.Lock()
        self._write_snapshot()
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._snapshots = threading.Thread(target=self._write_snapshots, name="snapshot", daemon=True)
        self._snapshots.start()

    def lookup(self, name):
        """The stock called ``name``; raise a 404 RpcError if there is none."""
        stock = self._stocks.get(name)
        if stock is None:
            raise RpcError(404, f"stock {name!r} not found")
        return stock

    def trade(self, trade_id, name, order_type, quantity):
        """Apply a buy or sell once per trade id; a repeated id returns the original Trade."""
        with self._lock:
            if trade_id in self._trades:
                return self._trades[trade_id]
            stock = self.lookup(name)
            change = -quantity if order_type == "buy" else quantity
            if stock.quantity + change < 0:
                raise RpcError(409, f"insufficient quantity of {name}: {stock.quantity} available")
            trade = Trade(len(self._applied) + 1, trade_id, name, order_type, quantity)
            after = stock._replace(quantity=stock.quantity + change,
                                   trading_volume=stock.trading_volume + quantity, seq=trade.seq)
            # The journal line is the commit point; the CSV snapshot follows it.
            self._journal.append((*trade, after.quantity, after.trading_volume))
            self._stocks[name] = after
            self._remember(trade)
            self._dirty.set()
            return trade

    def stocks(self):
        """Every stock, in catalog order."""
        return list(self._stocks.values())

    def trades_after(self, seq):
        """Applied trades with a sequence number above ``seq``, oldest first."""
        return self._applied[seq:]

    def close(self):
        """Stop the snapshot thread, write the final snapshot and close the journal."""
        with self._lock:
            self._closing.set()
            self._dirty.set()
            self._snapshots.join()
            self._write_snapshot()
            self._journal.close()

    def _replay(self, seq, trade_id, name, order_type, quantity, quantity_after, volume_after):
        # Journal lines hold absolute values, so replaying over a newer snapshot is harmless.
        self._stocks[name] = self._stocks[name]._replace(
            quantity=int(quantity_after), trading_volume=int(volume_after), seq=int(seq))
        self._remember(Trade(int(seq), trade_id, name, order_type, int(quantity)))

    def _remember(self, trade):
        self._trades[trade.trade_id] = trade
        self._applied.append(trade)

    def _write_snapshots(self):
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self._closing.is_set():
                return
            self._write_snapshot()
            # At most one rewrite a second: its fsyncs would otherwise queue up behind, and
            # delay, the journal fsyncs of the trades that follow.
            self._closing.wait(SNAPSHOT_INTERVAL)

    def _write_snapshot(self):
        replace_atomically(self.csv_path, STOCK_COLUMNS,
                           [stock[:len(STOCK_COLUMNS)] for stock in self._stocks.values()])

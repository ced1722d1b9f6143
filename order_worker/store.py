"""The order log: gapless transaction numbers in an fsynced, append-only CSV."""
import threading
from typing import NamedTuple

from broker.storage import AppendLog

COLUMNS = ("transaction_number", "stock_name", "order_type", "trade_quantity", "trade_id", "catalog_seq")


class Order(NamedTuple):
    number: int
    name: str
    type: str
    quantity: int
    trade_id: str
    catalog_seq: int


class OrderLog:
    """Numbers each trade the catalog applied exactly once, in the order they are recorded."""

    def __init__(self, data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log, rows = AppendLog.open(data_dir / "order_log.csv", COLUMNS)
        self._orders = []
        self._by_trade_id = {}
        self._logged_seqs = set()
        self._seq_floor = 0
        for number, name, order_type, quantity, trade_id, seq in rows:
            self._remember(Order(int(number), name, order_type, int(quantity), trade_id, int(seq)))
        self._lock = threading.Lock()

    def get(self, number):
        """The order with this transaction number, or None."""
        return self._orders[number] if 0 <= number < len(self._orders) else None

    def find(self, trade_id):
        """The order recorded for a trade id, or None."""
        return self._by_trade_id.get(trade_id)

    def record(self, trade_id, name, order_type, quantity, catalog_seq):
        """Give an applied trade the next transaction number, unless it already has one."""
        with self._lock:
            if trade_id in self._by_trade_id:
                return self._by_trade_id[trade_id]
            order = Order(self.next_number, name, order_type, quantity, trade_id, catalog_seq)
            self.append(order)
            return order

    @property
    def next_number(self):
        """The transaction number the next order gets."""
        return len(self._orders)

    def append(self, order, sync=True):
        """Write an order that already has the next transaction number, and make it durable
        (or leave that to ``sync``, to fsync several at once)."""
        if order.number != self.next_number:
            raise ValueError(f"order {order.number} out of turn: the next number is {self.next_number}")
        self._log.append(order, sync)
        self._remember(order)

    def sync(self):
        """Make every order appended so far durable."""
        self._log.sync()

    def close(self):
        self._log.close()

    @property
    def seq_floor(self):
        """Every catalog trade up to this sequence number is in the log."""
        return self._seq_floor

    def _remember(self, order):
        self._orders.append(order)
        self._by_trade_id[order.trade_id] = order
        self._logged_seqs.add(order.catalog_seq)
        while self._seq_floor + 1 in self._logged_seqs:
            self._seq_floor += 1
            self._logged_seqs.discard(self._seq_floor)

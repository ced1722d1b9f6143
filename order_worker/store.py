"""The order log: gapless transaction numbers in an fsynced, append-only CSV."""
import csv
import threading
from typing import NamedTuple

from storage.files import AppendLog, LineIndex, parse_line, read_line, require_free_space
from storage.window import KeyWindow

# Free space a trade needs before it goes to the catalog, so a trade the catalog applied can be logged.
RESERVE_BYTES = 64 * 1024
COLUMNS = ("transaction_number", "stock_name", "order_type", "trade_quantity", "trade_id", "catalog_seq")


class Order(NamedTuple):
    number: int
    name: str
    type: str
    quantity: int
    trade_id: str
    catalog_seq: int

    @classmethod
    def parse(cls, fields):
        number, name, order_type, quantity, trade_id, seq = fields
        return cls(int(number), name, order_type, int(quantity), trade_id, int(seq))


class OrderLog:
    """Numbers each trade the catalog applied exactly once, in the order they are recorded.

    Nothing is kept per order in memory but a trade id → number map of the idempotency window;
    an order is read from the file through a LineIndex. Start-up indexes the file and reads
    only the window's tail.
    """

    def __init__(self, data_dir, window_seconds=24 * 3600, window_keys=500_000):
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = AppendLog.open(data_dir / "order_log.csv", COLUMNS)
        self._index = LineIndex.scan(self._log.path)
        self._window = KeyWindow(window_seconds, window_keys)
        self._logged_seqs = set()
        # Start-up reads only the window's tail: the trades before it were reconciled long ago.
        start = max(0, self.next_number - window_keys)
        self._seq_floor = self.get(start).catalog_seq - 1 if start else 0
        for order in self._orders_from(start):
            self._remember(order)
        self._lock = threading.Lock()

    def get(self, number):
        """The order with this transaction number, or None."""
        if not 0 <= number < self.next_number:
            return None
        return Order.parse(parse_line(read_line(self._log, self._index.offset(self._log, number + 1))))

    def find(self, trade_id):
        """The order recorded for a trade id in the idempotency window, or None."""
        number = self._window.get(trade_id)
        return None if number is None else self.get(number)

    def record(self, trade_id, name, order_type, quantity, catalog_seq):
        """Give an applied trade the next transaction number, unless it already has one."""
        with self._lock:
            order = self.find(trade_id)
            if order is None:
                order = Order(self.next_number, name, order_type, quantity, trade_id, catalog_seq)
                self.append(order)
            return order

    def require_space(self):
        """Raise DiskFull when the disk is too full to log another order."""
        require_free_space(self._log.path, RESERVE_BYTES)

    @property
    def next_number(self):
        """The transaction number the next order gets."""
        return self._index.lines - 1  # the header is line 0

    def append(self, order, sync=True):
        """Write an order that already has the next transaction number, and make it durable
        (or leave that to ``sync``, to fsync several at once)."""
        if order.number != self.next_number:
            raise ValueError(f"order {order.number} out of turn: the next number is {self.next_number}")
        offset = self._log.append(order, sync)
        self._index.appended(offset, self._log.size - offset)
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

    def _orders_from(self, number):
        """The orders from transaction ``number`` to the end of the file, read a few MB at a time."""
        offset, pending = self._index.offset(self._log, number + 1), b""
        while data := self._log.read(offset, 1 << 22):
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            yield from map(Order.parse, csv.reader(line.decode() for line in lines))

    def _remember(self, order):
        self._window.add(order.trade_id, order.number)
        if order.catalog_seq > self._seq_floor:
            self._logged_seqs.add(order.catalog_seq)
        while self._seq_floor + 1 in self._logged_seqs:
            self._seq_floor += 1
            self._logged_seqs.discard(self._seq_floor)

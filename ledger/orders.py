"""The order log: gapless transaction numbers in an fsynced, append-only CSV, each line checksummed."""
import csv
import logging
import shutil
import zlib
from typing import NamedTuple

from storage.files import (
    AppendLog,
    LineIndex,
    csv_line,
    iter_rows,
    read_line,
    replace_atomically,
    require_free_space,
)
from storage.window import KeyWindow
from trading.orders import ORDER_TYPES

log = logging.getLogger(__name__)
# Free space a replica needs to log another trade: a leader with less steps down before proposing one.
RESERVE_BYTES = 64 * 1024
# time_ms: when the leader proposed the order (0: unknown, a line from before it was recorded);
# crc: CRC-32 of the line up to and including the comma before it, in 8 hex digits.
COLUMNS = ("transaction_number", "stock_name", "order_type", "trade_quantity", "trade_id", "catalog_seq",
           "time_ms", "crc")
OLD_COLUMNS = COLUMNS[:6]  # the format before time_ms and crc: migrated when opened


FIELD_TYPES = (int, str, str, int, str, int, int)


class Order(NamedTuple):
    number: int
    name: str
    type: str
    quantity: int
    trade_id: str
    catalog_seq: int
    time_ms: int = 0

    @classmethod
    def load(cls, fields):
        """The Order of a stream entry's JSON object; raise ValueError unless every field has its type."""
        order = cls(**fields)
        if not all(type(value) is kind for value, kind in zip(order, FIELD_TYPES, strict=True)):
            raise ValueError(f"not an order: {fields!r}")
        if order.type not in ORDER_TYPES or order.quantity < 1 or order.number < 0:
            raise ValueError(f"not an order: {fields!r}")
        return order

    @classmethod
    def parse(cls, fields):
        number, name, order_type, quantity, trade_id, seq, time_ms = fields
        return cls(int(number), name, order_type, int(quantity), trade_id, int(seq), int(time_ms))


class Corrupt(Exception):
    """A complete line of the order log whose checksum does not match: the disk damaged it."""

    def __init__(self, number, line):
        super().__init__(f"order log line {number + 1} (transaction {number}) is damaged: {line[:200]!r}")
        self.number = number


def checksummed(order):
    """The row written for an order: its fields, then the checksum of their CSV text and the comma."""
    return (*order, f"{zlib.crc32(csv_line(order)[:-2] + b','):08x}")  # [:-2]: the line's \r\n


def decode(line, number):
    """The Order on one line (bytes, without its newline); raise Corrupt if its checksum is wrong."""
    body, _, crc = line.rstrip(b"\r").rpartition(b",")
    try:
        if int(crc, 16) == zlib.crc32(body + b","):
            return Order.parse(next(csv.reader([body.decode()])))
    except (ValueError, TypeError, StopIteration):
        pass
    raise Corrupt(number, line)


class OrderLog:
    """The orders a replica accepted from the order stream, numbered in the order they were accepted.

    Nothing is kept per order in memory but a trade id → number map of the idempotency window;
    an order is read from the file through a LineIndex. Start-up indexes the file, reads only
    the window's tail, and checks its checksums: a damaged line there is cut off with everything
    after it (the original is kept beside it), for the stream to give the orders back.
    """

    def __init__(self, data_dir, window_seconds=24 * 3600, window_keys=500_000):
        self._arguments = data_dir, window_seconds, window_keys
        self._load()

    def _load(self):
        """Open the log, index it and read the window's tail."""
        data_dir, window_seconds, window_keys = self._arguments
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "order_log.csv"
        _migrate(path)
        self._log = AppendLog.open(path, COLUMNS)
        self._index = LineIndex.scan(self._log.path)
        self._window = KeyWindow(window_seconds, window_keys)
        # Start-up reads only the window's tail: the trades before it decide nothing any more.
        try:
            for order in self._orders_from(max(0, self.next_number - window_keys)):
                self.remember(order)
        except Corrupt as exc:
            self._cut_damaged(exc)

    def get(self, number):
        """The order with this transaction number, or None; raise Corrupt if its line is damaged."""
        if not 0 <= number < self.next_number:
            return None
        return decode(read_line(self._log, self._index.offset(self._log, number + 1)), number)

    def find(self, trade_id, at_ms=0):
        """The order recorded for a trade id in the idempotency window of a decision at ``at_ms``."""
        number = self._window.get(trade_id, at_ms / 1000)
        return None if number is None else self.get(number)

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
        offset = self._log.append(checksummed(order), sync)
        self._index.appended(offset, self._log.size - offset)
        self.remember(order)

    def remember(self, order):
        """Count an order already in the log as decided again (a replica re-reading the stream)."""
        self._window.add(order.trade_id, order.number, order.time_ms / 1000)

    def rewind(self, number):
        """Make the window what it was before transaction ``number``, to decide the entries from
        there again exactly as the first time (each one ``remember``ed as it is checked)."""
        self._window.clear()
        for order in self._orders_from(max(0, number - self._window.limit), until=number):
            self.remember(order)

    def sync(self):
        """Make every order appended so far durable."""
        self._log.sync()

    def reload(self):
        """Forget what was appended since the last fsync (a write failed: it may not be on the disk),
        and read the log again from the file."""
        try:
            self._log.truncate(self._log.synced)
        except OSError as exc:  # the disk refuses even that: the file is read as it is
            log.warning("could not cut the order log back to its last fsync: %s", exc)
        self._log.close()
        self._load()

    def close(self):
        self._log.close()

    def _orders_from(self, number, until=None):
        """The orders from transaction ``number`` to ``until`` (or the end), read a few MB at a time."""
        until = self.next_number if until is None else until
        offset, pending = self._index.offset(self._log, number + 1), b""
        while number < until and (data := self._log.read(offset, 1 << 22)):
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines[:until - number]:
                yield decode(line, number)
                number += 1

    def _cut_damaged(self, exc):
        """Cut the log before its first damaged line, keeping the whole file beside it for the operator."""
        number = exc.number
        copy = self._log.path.with_name(f"{self._log.path.name}.damaged-{number}")
        shutil.copyfile(self._log.path, copy)
        log.critical("%s; cutting the log before it (the whole file is kept as %s): the order stream "
                     "gives back the orders from there", exc, copy.name)
        self._log.truncate(self._index.offset(self._log, number + 1))
        self._index = LineIndex.scan(self._log.path)

def _migrate(path):
    """Rewrite an order log of the old format (no time, no checksum) in the current one, atomically."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        if f.readline().rstrip("\r\n") != ",".join(OLD_COLUMNS):
            return
    AppendLog.open(path, OLD_COLUMNS).close()  # cuts a torn last line, under the lock
    rows = (checksummed(Order.parse([*fields, 0])) for fields in iter_rows(path, OLD_COLUMNS))
    replace_atomically(path, COLUMNS, rows)
    log.warning("%s: rewritten with a time and a checksum on every line", path)

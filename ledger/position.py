"""A replica's place in the order stream, saved beside its log after each group commit."""
import json
import os
from typing import NamedTuple

from ledger.stocks import Stocks


class Position(NamedTuple):
    """Where a replica reads on: the next stream offset it applies, the transaction number the next
    order there gets, the message id of the entry before it (None if unknown), the stocks there."""
    offset: int
    next_number: int
    last_id: str | None
    stocks: Stocks


class PositionFile:
    """The file ``stream_position``: one line of whole pages, rewritten in place by ``save``."""

    def __init__(self, path):
        self.path = path
        self._size = -1  # the length last written, so a save truncates only when it changes

    def read(self):
        """The saved Position, or None without a readable one (also a file from before the stocks
        were saved with it)."""
        try:
            offset, next_number, last_id, table = self.path.read_text().split(maxsplit=3)
            return Position(int(offset), int(next_number), last_id.strip("-") or None, Stocks(json.loads(table)))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, position):
        """Write ``position`` over the last one. Not synced: written after the log's fsync, at worst it
        lags, and reading resumes earlier, from the stocks saved with it. One write of whole pages, so
        it is never half there."""
        line = (f"{position.offset} {position.next_number} {position.last_id or '-'} "
                f"{json.dumps(position.stocks.rows())}")
        data = line.encode().ljust(-(-(len(line) + 1) // 4096) * 4096 - 1) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
            if len(data) != self._size:  # the table grew or shrank by a page (or the first save)
                os.ftruncate(fd, len(data))
                self._size = len(data)
        finally:
            os.close(fd)


def read_position(path):
    """The Position saved at ``path``, or None (``PositionFile.read``)."""
    return PositionFile(path).read()

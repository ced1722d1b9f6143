"""Crash-safe CSV files: fsynced append-only logs and atomically replaced tables."""
import csv
import fcntl
import io
import logging
import os

from broker.metrics import FSYNC_DURATION

log = logging.getLogger(__name__)


def replace_atomically(path, header, rows):
    """Write a whole CSV table so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_table(path, header):
    """Rows of a CSV table written by replace_atomically, checking its header."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != list(header):
            raise ValueError(f"{path}: expected header {','.join(header)}")
        return list(reader)


class AppendLog:
    """An append-only CSV log: every append is fsynced before it returns.

    A crash can leave a torn last line (no trailing newline); opening the log cuts it off,
    says so, and keeps every complete record before it.
    """

    def __init__(self, path, header):
        self.path, self.header = path, list(header)
        if not path.exists():
            replace_atomically(path, header, [])

    @classmethod
    def open(cls, path, header):
        """Return the log, ready for appends, and the records already in it."""
        self = cls(path, header)
        self._file = open(path, "a", newline="")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{path} is in use by another process") from None
        return self, self._read_and_repair()

    def append(self, row):
        """Write one record and make it durable."""
        line = io.StringIO()
        csv.writer(line).writerow(row)
        self._file.write(line.getvalue())
        self._file.flush()
        with FSYNC_DURATION.time():
            os.fdatasync(self._file.fileno())

    def close(self):
        self._file.close()

    def _read_and_repair(self):
        with open(self.path, "rb") as f:
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            log.warning("%s: dropping torn last line %r left by a crash", self.path, data[len(complete):])
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))
                os.fsync(f.fileno())
        rows = list(csv.reader(io.StringIO(complete.decode())))
        if not rows or rows[0] != self.header:
            raise ValueError(f"{self.path}: expected header {','.join(self.header)}")
        return rows[1:]


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

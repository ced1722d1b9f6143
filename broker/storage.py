"""Crash-safe CSV files: fsynced append-only logs and atomically replaced tables.

A full disk (ENOSPC, EDQUOT) is an expected fault: the write is undone and raises a 507 RpcError,
the first failure of an episode logs a warning and the first success after it logs its end.
"""
import bisect
import contextlib
import csv
import errno
import fcntl
import io
import logging
import os
from array import array

from broker.messages import RpcError

from broker.metrics import FSYNC_DURATION

log = logging.getLogger(__name__)
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_MESSAGE = "insufficient storage: the server's disk is full, nothing was changed; retry later"
_episode = {"full": False}  # one full-disk episode at a time per process


@contextlib.contextmanager
def full_disk_as_507(path):
    """Turn a full disk into RpcError(507), logging once when an episode starts and once when it ends."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            raise
        if not _episode["full"]:
            _episode["full"] = True
            log.warning("disk full writing %s (%s): refusing writes until space is freed", path, exc.strerror)
        raise RpcError(507, DISK_FULL_MESSAGE) from None
    if _episode["full"]:
        _episode["full"] = False
        log.info("disk space is available again (%s written)", path)


def require_free_space(path, reserve):
    """Raise the full-disk 507 unless the filesystem holding ``path`` has ``reserve`` bytes free."""
    with full_disk_as_507(path):
        stat = os.statvfs(path)
        if stat.f_bavail * stat.f_frsize < reserve:
            raise OSError(errno.ENOSPC, f"less than {reserve} bytes free")


def replace_atomically(path, header, rows):
    """Write a whole CSV table so that a crash or a full disk leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with full_disk_as_507(path):
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(header)
                writer.writerows(rows)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)  # frees the space it took
            raise
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def read_table(path, header):
    """Rows of a CSV table written by replace_atomically, checking its header."""
    return list(iter_rows(path, header))


def iter_rows(path, header):
    """The rows of a CSV file one at a time, its header checked and left out."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != list(header):
            raise ValueError(f"{path}: expected header {','.join(header)}")
        yield from reader


def csv_line(row):
    """One CSV record as UTF-8 bytes, newline included."""
    line = io.StringIO()
    csv.writer(line).writerow(row)
    return line.getvalue().encode()


def parse_line(data):
    """The fields of one CSV record given as bytes."""
    return next(csv.reader([data.decode()]))


class AppendLog:
    """An append-only CSV log: every append is fsynced before it returns.

    A crash can leave a torn last line (no trailing newline); opening the log cuts it off, says
    so, and keeps every complete record before it. An append that fails (a full disk) is cut
    off too, so the file never holds a partial record.
    """

    def __init__(self, path, fd):
        self.path, self._fd = path, fd
        self.size = self.synced = os.fstat(fd).st_size  # synced: how much of it an fsync has made durable

    @classmethod
    def open(cls, path, header):
        """Open (or create) the log for appends, locked against other processes, torn tail cut off."""
        if not path.exists():
            replace_atomically(path, header, [])
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"{path} is in use by another process") from None
        self = cls(path, fd)
        self._cut_torn_tail()
        next(iter_rows(path, header), None)  # checks the header
        return self

    def append(self, row, sync=True):
        """Write one record and make it durable (or leave that to ``sync``, to fsync several at
        once); return the offset where its line starts."""
        data, start = csv_line(row), self.size
        with full_disk_as_507(self.path):
            try:
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
                if sync:
                    self._fdatasync()
            except OSError:
                os.ftruncate(self._fd, start)
                raise
        self.size = start + len(data)
        if sync:
            self.synced = self.size
        return start

    def sync(self):
        """Make every record written so far durable."""
        with full_disk_as_507(self.path):
            self._fdatasync()
        self.synced = self.size

    def _fdatasync(self):
        with FSYNC_DURATION.time():
            os.fdatasync(self._fd)

    def truncate(self, size):
        """Cut the log to its first ``size`` bytes, durably."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = self.synced = size

    def read(self, offset, length):
        """Up to ``length`` bytes of the log from ``offset``."""
        return os.pread(self._fd, length, offset)

    def close(self):
        os.close(self._fd)

    def _cut_torn_tail(self):
        tail = self.read(max(0, self.size - 65536), 65536)
        complete = self.size - len(tail) + tail.rfind(b"\n") + 1
        if complete < self.size:
            log.warning("%s: dropping torn last line %r left by a crash", self.path, tail[complete - self.size:])
            self.truncate(complete)


class LineIndex:
    """Where each line of a file starts, in 8 bytes per BLOCK bytes of file.

    ``ends[i]`` counts the newlines before the end of block ``i``; a line is found by bisecting
    for its block and counting newlines inside it, so any line is one small read away.
    """

    BLOCK = 4096

    def __init__(self):
        self.ends, self.lines, self.size = array("q"), 0, 0

    @classmethod
    def scan(cls, path, chunk=1 << 22):
        """Index every complete line of a file."""
        self = cls()
        with open(path, "rb") as f:
            while data := f.read(chunk):
                for start in range(0, len(data), cls.BLOCK):
                    self._add(data.count(b"\n", start, start + cls.BLOCK), min(cls.BLOCK, len(data) - start))
        return self

    def appended(self, offset, length):
        """Count a line of ``length`` bytes written at ``offset`` (the end of the file)."""
        assert offset == self.size
        end = offset + length - 1  # where its newline is
        while len(self.ends) < end // self.BLOCK:
            self.ends.append(self.lines)
        self.lines += 1
        self.size = offset + length

    def offset(self, log, line):
        """Where line ``line`` (0 is the first) starts in ``log`` (an AppendLog of the indexed file)."""
        if line == 0:
            return 0
        block = bisect.bisect_left(self.ends, line)  # the block holding the newline ending line-1
        before = self.ends[block - 1] if block else 0
        start = block * self.BLOCK
        data = log.read(start, self.BLOCK)
        position = -1
        for _ in range(line - before):
            position = data.index(b"\n", position + 1)
        return start + position + 1

    def _add(self, newlines, length):
        self.lines += newlines
        self.size += length
        if self.size % self.BLOCK == 0:
            self.ends.append(self.lines)


def read_line(log, offset, max_length=8192):
    """The line of ``log`` starting at ``offset``, without its newline."""
    data = log.read(offset, max_length)
    return data[:data.index(b"\n")]


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

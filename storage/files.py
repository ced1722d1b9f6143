"""Crash-safe CSV files: fsynced append-only logs and atomically replaced tables.

A full disk (ENOSPC, EDQUOT) is an expected fault: the write is undone and raises DiskFull (which the
RPC server answers with 507), the first failure of an episode logs a warning and the first success
after it logs its end.
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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from runtime.metrics import FSYNC_DURATION

log = logging.getLogger(__name__)
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_MESSAGE = "insufficient storage: the server's disk is full, nothing was changed; retry later"
_episode = {"full": False}  # one full-disk episode at a time per process


class DiskFull(Exception):
    """A write refused because the disk is full; nothing was changed."""

    def __init__(self) -> None:
        super().__init__(DISK_FULL_MESSAGE)


@contextlib.contextmanager
def refusing_full_disk(path: Path) -> Iterator[None]:
    """Turn a full disk into DiskFull, logging once when an episode starts and once when it ends."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            raise
        if not _episode["full"]:
            _episode["full"] = True
            log.warning("disk full writing %s (%s): refusing writes until space is freed", path, exc.strerror)
        raise DiskFull from None
    if _episode["full"]:
        _episode["full"] = False
        log.info("disk space is available again (%s written)", path)


def require_free_space(path: Path, reserve: int) -> None:
    """Raise DiskFull unless the filesystem holding ``path`` has ``reserve`` bytes free."""
    with refusing_full_disk(path):
        stat = os.statvfs(path)
        if stat.f_bavail * stat.f_frsize < reserve:
            raise OSError(errno.ENOSPC, f"less than {reserve} bytes free")


def replace_atomically(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a whole CSV table so that a crash or a full disk leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with refusing_full_disk(path):
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


def read_table(path: Path, header: Sequence[str]) -> list[list[str]]:
    """Rows of a CSV table written by replace_atomically, checking its header."""
    return list(iter_rows(path, header))


def iter_rows(path: Path, header: Sequence[str]) -> Iterator[list[str]]:
    """The rows of a CSV file one at a time, its header checked and left out."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != list(header):
            raise ValueError(f"{path}: expected header {','.join(header)}")
        yield from reader


def csv_line(row: Sequence[object]) -> bytes:
    """One CSV record as UTF-8 bytes, newline included."""
    line = io.StringIO()
    csv.writer(line).writerow(row)
    return line.getvalue().encode()


def parse_line(data: bytes) -> list[str]:
    """The fields of one CSV record given as bytes."""
    return next(csv.reader([data.decode()]))


class AppendLog:
    """An append-only CSV log: every append is fsynced before it returns.

    A crash can leave a torn last line (no trailing newline); opening the log cuts it off, says
    so, and keeps every complete record before it. An append that fails (a full disk) is cut
    off too, so the file never holds a partial record.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd
        self.size = self.synced = os.fstat(fd).st_size  # synced: how much of it an fsync has made durable

    @classmethod
    def open(cls, path: Path, header: Sequence[str]) -> "AppendLog":
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

    def append(self, row: Sequence[object], sync: bool = True) -> int:
        """Write one record and make it durable (or leave that to ``sync``, to fsync several at
        once); return the offset where its line starts."""
        data, start = csv_line(row), self.size
        with refusing_full_disk(self.path):
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

    def sync(self) -> None:
        """Make every record written so far durable."""
        with refusing_full_disk(self.path):
            self._fdatasync()
        self.synced = self.size

    def _fdatasync(self) -> None:
        with FSYNC_DURATION.time():
            os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        """Cut the log to its first ``size`` bytes, durably."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = self.synced = size

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the log from ``offset``."""
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        os.close(self._fd)

    def _cut_torn_tail(self) -> None:
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

    def __init__(self) -> None:
        self.ends, self.lines, self.size = array("q"), 0, 0

    @classmethod
    def scan(cls, path: Path, chunk: int = 1 << 22) -> "LineIndex":
        """Index every complete line of a file."""
        self = cls()
        with open(path, "rb") as f:
            while data := f.read(chunk):
                for start in range(0, len(data), cls.BLOCK):
                    self._add(data.count(b"\n", start, start + cls.BLOCK), min(cls.BLOCK, len(data) - start))
        return self

    def appended(self, offset: int, length: int) -> None:
        """Count a line of ``length`` bytes written at ``offset`` (the end of the file)."""
        assert offset == self.size
        end = offset + length - 1  # where its newline is
        while len(self.ends) < end // self.BLOCK:
            self.ends.append(self.lines)
        self.lines += 1
        self.size = offset + length

    def offset(self, log: AppendLog, line: int) -> int:
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

    def _add(self, newlines: int, length: int) -> None:
        self.lines += newlines
        self.size += length
        if self.size % self.BLOCK == 0:
            self.ends.append(self.lines)


def read_line(log: AppendLog, offset: int, max_length: int = 8192) -> bytes:
    """The line of ``log`` starting at ``offset``, without its newline."""
    data = log.read(offset, max_length)
    return data[:data.index(b"\n")]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

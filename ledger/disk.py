"""Whether a replica can write its order log: write faults and slow fsyncs are caught, counted and probed.

A replica that cannot write must not lead (it would answer nothing but errors while a healthy standby
waits), so the order log's writes go through ``DiskHealth.writing``: a full disk, an I/O error, a
read-only file system or an fsync slower than FSYNC_LIMIT becomes a StorageFault, which the replica
answers by stepping down; ``probe`` tells when the disk takes writes again.
"""
import contextlib
import errno
import logging
import os
import threading
import time

from broker.messages import RpcError
from ledger.orders import RESERVE_BYTES
from runtime.metrics import ORDER_LOG_WRITABLE, STORAGE_FAULTS
from storage.files import DISK_FULL_MESSAGE, DiskFull

log = logging.getLogger(__name__)
KINDS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EIO: "io", errno.EROFS: "read-only"}


class StorageFault(Exception):
    """The order log could not be written (``kind``: full, io, read-only or slow)."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind

    def error(self):
        """What a request this replica cannot serve is answered: the full-disk 507, or a 503."""
        if self.kind == "full":
            return RpcError(507, DISK_FULL_MESSAGE)
        return RpcError(503, "the order service cannot write its log; retry later")


class DiskHealth:
    """The state of the disk under ``data_dir``: ``fault`` is the StorageFault of the episode, or None."""

    def __init__(self, data_dir, fsync_limit):
        self.data_dir, self.fsync_limit = data_dir, fsync_limit
        self.fault = None
        self._writing_since = None  # when the write in progress started (monotonic), for ``stalled``
        self._lock = threading.Lock()
        ORDER_LOG_WRITABLE.set(1)

    @contextlib.contextmanager
    def writing(self, what):
        """Turn a failed or too slow write of ``what`` into a StorageFault (reported)."""
        started = self._writing_since = time.monotonic()
        try:
            yield
        except OSError as exc:
            raise self.report(KINDS.get(exc.errno or 0, "io"), f"{what} failed: {exc.strerror or exc}") from exc
        except DiskFull:
            raise self.report("full", f"{what} failed: the disk is full") from None
        finally:
            self._writing_since = None
        if (took := time.monotonic() - started) > self.fsync_limit:
            raise self.report("slow", f"{what} took {took:.1f} s, more than FSYNC_LIMIT ({self.fsync_limit} s)")

    def stalled(self):
        """A StorageFault if a write has been running for longer than the limit (a stalled disk), else None."""
        started = self._writing_since
        if started is not None and time.monotonic() - started > self.fsync_limit:
            return self.report("slow", f"a write of the order log has taken more than {self.fsync_limit} s")
        return None

    def report(self, kind, reason):
        """Count a fault, log the first of an episode, and return it as a StorageFault."""
        fault = StorageFault(kind, reason)
        STORAGE_FAULTS.labels(kind).inc()
        with self._lock:
            first, self.fault = self.fault is None, fault
        if first:
            ORDER_LOG_WRITABLE.set(0)
            log.error("storage fault: %s; this replica does not lead until its disk takes writes again", reason)
        return fault

    def probe(self):
        """Whether the disk takes writes again (a probe file written and fsynced in time, and room for
        a trade); ends the episode if so."""
        if self.fault is None:
            return True
        path, started = self.data_dir / "write-probe", time.monotonic()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                path.unlink(missing_ok=True)
            statvfs = os.statvfs(self.data_dir)
            if statvfs.f_bavail * statvfs.f_frsize < RESERVE_BYTES or time.monotonic() - started > self.fsync_limit:
                return False
        except OSError:
            return False
        with self._lock:
            self.fault = None
        ORDER_LOG_WRITABLE.set(1)
        log.warning("the disk takes writes again: following the order stream, and may lead")
        return True

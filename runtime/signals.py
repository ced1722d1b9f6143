"""Stop signals, recorded by a handler that does nothing else."""
import os
import select
import signal
from typing import Any


class StopSignal:
    """Notes SIGTERM and SIGINT (Ctrl-C) so that ordinary code can stop gracefully.

    The interpreter's own C handler writes each signal's number to a pipe (``set_wakeup_fd``),
    which wakes a ``wait``; the Python handler only sets ``requested``, so no lock is taken and
    no code is re-entered however many signals come. Use it from the main thread, where Python
    runs the handler before anything else, so ``requested`` is a check without a system call.
    """

    def __init__(self) -> None:
        self.requested = False
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)
        signal.set_wakeup_fd(self._write_end)
        self._handle(self._record)

    def _record(self, *_: object) -> None:
        self.requested = True

    def set(self) -> None:
        """Ask for a stop from ordinary code, e.g. a thread that found it cannot go on."""
        self.requested = True
        os.write(self._write_end, b"\0")

    def wait(self, timeout: float | None = None) -> bool:
        """True once a stop was asked for; waits at most ``timeout`` seconds (None: forever)."""
        if not self.requested and timeout != 0:
            select.select([self._read_end], [], [], timeout)
        if not self.requested:
            return False
        # From now on ignored: at exit Python puts back the default action, and one more SIGTERM
        # would then kill the process during its clean stop.
        self._handle(signal.SIG_IGN)
        return True

    @staticmethod
    def _handle(action: Any) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, action)

"""Stop signals, recorded without running any of our code inside a signal handler."""
import os
import select
import signal


class StopSignal:
    """Notes SIGTERM and SIGINT (Ctrl-C) so that ordinary code can stop gracefully.

    The interpreter's own C handler writes each signal's number to a pipe (``set_wakeup_fd``)
    and the Python handler does nothing, so no lock is taken and no code is re-entered however
    many signals come and whichever thread receives them. Use it from the main thread.
    """

    def __init__(self):
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)
        signal.set_wakeup_fd(self._write_end)
        self._handle(lambda *_: None)

    def set(self):
        """Ask for a stop from ordinary code, e.g. a thread that found it cannot go on."""
        os.write(self._write_end, b"\0")

    def wait(self, timeout=None):
        """True once a stop signal has arrived; waits at most ``timeout`` seconds (None: forever)."""
        if not select.select([self._read_end], [], [], timeout)[0]:
            return False
        # From now on ignored: at exit Python puts back the default action, and one more SIGTERM
        # would then kill the process during its clean stop.
        self._handle(signal.SIG_IGN)
        return True

    @staticmethod
    def _handle(action):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, action)

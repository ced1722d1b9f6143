"""The idempotency window: recent keys and their values, forgotten by age and by count."""
import time
from collections import deque


class KeyWindow:
    """Remembers each key for ``seconds`` after it was added, and at most the newest ``limit`` keys.

    Keys are added in order, so the oldest are forgotten first; ages are kept per second of
    arrival, not per key, to spend no memory beyond the key and its value.
    """

    def __init__(self, seconds, limit, clock=time.monotonic):
        self.seconds, self.limit, self._clock = seconds, limit, clock
        self._values = {}
        self._keys = deque()
        self._arrivals = deque()  # [second, number of keys that arrived in it], oldest first

    def __len__(self):
        return len(self._keys)

    def get(self, key):
        """The value of a key still in the window, or None."""
        return self._values.get(key)

    def add(self, key, value):
        """Remember a new key (one not in the window) with its value."""
        now = int(self._clock())
        self._values[key] = value
        self._keys.append(key)
        if self._arrivals and self._arrivals[-1][0] == now:
            self._arrivals[-1][1] += 1
        else:
            self._arrivals.append([now, 1])
        while len(self._keys) > self.limit:
            self._forget_oldest()
        while self._arrivals and self._arrivals[0][0] <= now - self.seconds:
            self._forget_oldest()

    def newest(self):
        """The values, newest first."""
        return (self._values[key] for key in reversed(self._keys))

    def _forget_oldest(self):
        del self._values[self._keys.popleft()]
        self._arrivals[0][1] -= 1
        if not self._arrivals[0][1]:
            self._arrivals.popleft()

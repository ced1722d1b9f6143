"""The idempotency window: recent keys and their values, forgotten by age and by count."""
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Any


class KeyWindow:
    """Remembers each key for ``seconds`` after it was added, and at most the newest ``limit`` keys.

    Keys are added in order, so the oldest are forgotten first; ages are kept per second of
    arrival, not per key, to spend no memory beyond the key and its value.
    """

    def __init__(self, seconds: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.limit, self._clock = seconds, limit, clock
        self._values: dict[Hashable, Any] = {}
        self._keys: deque[Hashable] = deque()
        self._arrivals: deque[list[int]] = deque()  # [second, number of keys that arrived in it], oldest first

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: Hashable) -> Any:
        """The value of a key still in the window, or None."""
        return self._values.get(key)

    def add(self, key: Hashable, value: Any) -> None:
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

    def newest(self) -> Iterator[Any]:
        """The values, newest first."""
        return (self._values[key] for key in reversed(self._keys))

    def _forget_oldest(self) -> None:
        del self._values[self._keys.popleft()]
        self._arrivals[0][1] -= 1
        if not self._arrivals[0][1]:
            self._arrivals.popleft()

"""The idempotency window: the newest keys with their values, each in the window for a while."""
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any


class KeyWindow:
    """Remembers the newest ``limit`` keys, each with its value and the time it was added.

    A key counts for a decision made at time ``at`` only if it was added less than ``seconds``
    before ``at``. Times are given, never read from a clock, so a decision depends only on what
    was added and the time passed in: replicas that add the same keys with the same times decide
    alike, however often they restart. A time of 0 means unknown (only the count applies).
    """

    def __init__(self, seconds: float, limit: int) -> None:
        self.seconds, self.limit = seconds, limit
        self._values: dict[Hashable, tuple[Any, float]] = {}  # key -> (value, added at)
        self._keys: deque[tuple[Hashable, Any]] = deque()  # oldest first; a key added again appears twice

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable, at: float = 0) -> Any:
        """The value of a key still in the window for a decision at time ``at``, or None."""
        value, added = self._values.get(key, (None, 0))
        if value is not None and at and added and added <= at - self.seconds:
            return None
        return value

    def add(self, key: Hashable, value: Any, at: float = 0) -> None:
        """Remember a key with its value (replacing an older value of the key), added at time ``at``."""
        self._values[key] = (value, at)
        self._keys.append((key, value))
        while len(self._keys) > self.limit:
            old_key, old_value = self._keys.popleft()
            if self._values[old_key][0] == old_value:  # not a newer value of the same key
                del self._values[old_key]

    def clear(self) -> None:
        self._values.clear()
        self._keys.clear()

    def newest(self) -> Iterator[Any]:
        """The values, newest first."""
        return (value for key, value in reversed(self._keys) if self._values.get(key, (None,))[0] == value)

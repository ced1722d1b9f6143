"""Unit tests for the idempotency window."""
from storage.window import KeyWindow


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_keeps_at_most_limit_keys_forgetting_the_oldest():
    window = KeyWindow(seconds=60, limit=3)
    for n in range(5):
        window.add(f"k{n}", n)
    assert len(window) == 3
    assert window.get("k1") is None and window.get("k2") == 2 and window.get("k4") == 4
    assert list(window.newest()) == [4, 3, 2]


def test_forgets_keys_older_than_the_window():
    clock = Clock()
    window = KeyWindow(seconds=10, limit=100, clock=clock)
    window.add("old", 1)
    clock.now += 5
    window.add("newer", 2)
    clock.now += 5
    window.add("now", 3)
    assert window.get("old") is None and window.get("newer") == 2
    clock.now += 20
    window.add("later", 4)
    assert list(window.newest()) == [4] and len(window) == 1


def test_count_and_age_limits_together():
    clock = Clock()
    window = KeyWindow(seconds=10, limit=2, clock=clock)
    for key in "abc":  # same second: one arrival bucket, trimmed by count
        window.add(key, key)
    clock.now += 10
    window.add("d", "d")
    assert list(window.newest()) == ["d"]

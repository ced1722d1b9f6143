"""Unit tests for the idempotency window."""
from storage.window import KeyWindow


def test_keeps_at_most_limit_keys_forgetting_the_oldest():
    window = KeyWindow(seconds=60, limit=3)
    for n in range(5):
        window.add(f"k{n}", n)
    assert len(window) == 3
    assert window.get("k1") is None and window.get("k2") == 2 and window.get("k4") == 4
    assert list(window.newest()) == [4, 3, 2]


def test_a_key_counts_only_for_decisions_within_seconds_of_its_time():
    window = KeyWindow(seconds=10, limit=100)
    window.add("old", 1, at=1000)
    window.add("newer", 2, at=1005)
    assert window.get("old", at=1009.9) == 1 and window.get("old", at=1010) is None
    assert window.get("newer", at=1010) == 2
    # The decision's time, not the order of calls: an earlier decision still sees the key.
    assert window.get("old", at=1001) == 1
    assert window.get("old") == 1 and window.add("untimed", 3) is None and window.get("untimed", at=10**9) == 3


def test_a_key_added_again_keeps_its_newer_value_when_the_older_one_goes():
    window = KeyWindow(seconds=10, limit=2)
    window.add("k", 1, at=1000)
    window.add("k", 2, at=1020)  # a retry after the window: a new value
    window.add("other", 3, at=1021)  # pushes out the first ("k", 1)
    assert window.get("k", at=1021) == 2 and list(window.newest()) == [3, 2]


def test_the_same_adds_give_the_same_answers_however_they_are_replayed():
    adds = [(f"k{n % 7}", n, 1000 + n * 3) for n in range(40)]
    whole, tail = KeyWindow(seconds=20, limit=10), KeyWindow(seconds=20, limit=10)
    for add in adds:
        whole.add(*add)
    for add in adds[-10:]:  # a restart reads only the last `limit`
        tail.add(*add)
    for key in {a[0] for a in adds}:
        for at in (1100, 1110, 1125, 1200):
            assert whole.get(key, at) == tail.get(key, at)

"""Unit tests for the frontend's lookup cache: LRU order, sequence numbers, resets."""
import pytest

from frontend.cache import LookupCache


def answer(quantity, name="FishCo"):
    return {"name": name, "price": 11.5, "quantity": quantity}


@pytest.fixture
def cache():
    cache = LookupCache(2)
    cache.reset(enabled=True)
    return cache


def test_caches_a_lookup(cache):
    assert cache.get("FishCo") is None
    cache.fill("FishCo", answer(100), 0, cache.epoch)
    assert cache.get("FishCo") == answer(100)


def test_evicts_the_least_recently_used(cache):
    for name in ("A", "B"):
        cache.fill(name, answer(1, name), 0, cache.epoch)
    cache.get("A")
    cache.fill("C", answer(1, "C"), 0, cache.epoch)
    assert [cache.get(name) is not None for name in "ABC"] == [True, False, True]


@pytest.mark.parametrize("enabled, size", [(False, 2), (True, 0)])
def test_caches_nothing_while_disabled_or_sized_zero(enabled, size):
    cache = LookupCache(size)
    cache.reset(enabled)
    cache.fill("FishCo", answer(100), 0, cache.epoch)
    assert cache.get("FishCo") is None


def test_an_event_updates_a_cached_stock_only(cache):
    cache.fill("FishCo", answer(100), 0, cache.epoch)
    cache.on_event("stock.changed", {**answer(97), "trading_volume": 3, "seq": 1})
    cache.on_event("stock.changed", {**answer(50, "BoarCo"), "trading_volume": 50, "seq": 2})
    assert (cache.get("FishCo"), cache.get("BoarCo")) == (answer(97), None)


def test_a_late_event_never_overwrites_a_newer_value(cache):
    cache.fill("FishCo", answer(90), 5, cache.epoch)
    cache.changed("FishCo", 3, answer(97))
    cache.changed("FishCo", 5, answer(97))
    assert cache.get("FishCo") == answer(90)


def test_a_lookup_in_flight_during_a_trade_does_not_bring_back_the_old_value(cache):
    cache.fill("FishCo", answer(100), 0, cache.epoch)
    epoch = cache.epoch
    cache.changed("FishCo", 7)  # the trade's reply: evicts, and remembers seq 7
    assert cache.get("FishCo") is None
    cache.fill("FishCo", answer(100), 0, epoch)  # the lookup read the catalog before the trade
    assert cache.get("FishCo") is None
    cache.fill("FishCo", answer(97), 7, epoch)
    assert cache.get("FishCo") == answer(97)


def test_a_lookup_started_before_a_reset_is_not_cached(cache):
    epoch = cache.epoch
    cache.reset(enabled=True)
    cache.fill("FishCo", answer(100), 0, epoch)
    assert cache.get("FishCo") is None


def test_reset_forgets_everything(cache):
    cache.fill("FishCo", answer(90), 5, cache.epoch)
    cache.reset(enabled=True)
    assert cache.get("FishCo") is None
    cache.fill("FishCo", answer(100), 0, cache.epoch)  # e.g. the catalog's data was reset
    assert cache.get("FishCo") == answer(100)


@pytest.mark.parametrize("kind, event", [
    ("stock.sold", {**answer(1), "trading_volume": 1, "seq": 9}),
    ("stock.changed", {"name": "FishCo", "seq": 9}),
    ("stock.changed", {**answer(1), "trading_volume": 1, "seq": "9"}),
    ("stock.changed", {**answer(1), "trading_volume": 1, "seq": True}),
])
def test_ignores_other_and_malformed_events(cache, kind, event):
    cache.fill("FishCo", answer(100), 0, cache.epoch)
    cache.on_event(kind, event)
    assert cache.get("FishCo") == answer(100)

"""Unit tests for the order log: gapless numbers, dedupe, recovery."""
import pytest

from order_worker.store import Order, OrderLog


def test_numbers_start_at_zero_and_have_no_gaps(tmp_path):
    log = OrderLog(tmp_path)
    numbers = [log.record(f"t{n}", "FishCo", "buy", 1, n + 1).number for n in range(5)]
    assert numbers == [0, 1, 2, 3, 4]
    assert log.get(2).trade_id == "t2" and log.get(5) is None and log.get(-1) is None


def test_recording_a_trade_twice_keeps_its_number(tmp_path):
    log = OrderLog(tmp_path)
    first = log.record("t1", "FishCo", "buy", 1, 1)
    assert log.record("t1", "FishCo", "buy", 1, 1) == first
    assert log.find("t1") == first and log.find("t2") is None


def test_numbering_continues_after_a_restart(tmp_path):
    log = OrderLog(tmp_path)
    log.record("t1", "FishCo", "buy", 1, 1)
    log.record("t2", "BoarCo", "sell", 2, 2)
    log.close()
    again = OrderLog(tmp_path)
    assert again.find("t2").number == 1
    assert again.record("t3", "FishCo", "buy", 1, 3).number == 2


def test_seq_floor_covers_only_a_gapless_prefix(tmp_path):
    log = OrderLog(tmp_path)
    log.record("a", "FishCo", "buy", 1, 1)
    log.record("c", "FishCo", "buy", 1, 3)
    assert log.seq_floor == 1
    log.record("b", "FishCo", "buy", 1, 2)
    assert log.seq_floor == 3


def test_append_takes_only_the_next_number(tmp_path):
    log = OrderLog(tmp_path)
    log.append(Order(0, "FishCo", "buy", 1, "t0", 1))
    with pytest.raises(ValueError):
        log.append(Order(2, "FishCo", "buy", 1, "t2", 2))
    assert log.next_number == 1

"""Unit tests for the catalog store: lookups, atomic trades, dedupe and recovery."""
import shutil
import threading

import pytest

from broker import RpcError
from catalog_worker.store import DEFAULT_PRICES, STOCK_COLUMNS, CatalogStore, journal_segments
from storage.files import DiskFull, read_table


@pytest.fixture
def store(tmp_path):
    store = CatalogStore(tmp_path)
    yield store
    store.stop()


def test_starts_with_the_default_stocks(store, tmp_path):
    assert len(DEFAULT_PRICES) >= 10
    for name in ("GameStart", "FishCo", "BoarCo", "MenhirCo"):
        assert store.lookup(name).quantity == 100
    assert len(read_table(tmp_path / "stock_db.csv", STOCK_COLUMNS)) == len(DEFAULT_PRICES)


def test_unknown_stock_is_404(store):
    with pytest.raises(RpcError) as error:
        store.lookup("NoSuchCo")
    assert error.value.code == 404


def test_buy_and_sell_move_quantity_and_volume(store):
    store.trade("t1", "FishCo", "buy", 30)
    store.trade("t2", "FishCo", "sell", 5)
    assert store.lookup("FishCo")[2:4] == (75, 35)


def test_buy_never_goes_below_zero(store):
    store.trade("t1", "FishCo", "buy", 100)
    with pytest.raises(RpcError) as error:
        store.trade("t2", "FishCo", "buy", 1)
    assert error.value.code == 409
    assert store.lookup("FishCo").quantity == 0


def test_repeated_trade_id_applies_once(store):
    first = store.trade("t1", "FishCo", "buy", 3)
    assert store.trade("t1", "FishCo", "buy", 3) == first
    assert store.lookup("FishCo").quantity == 97


def test_trades_after_lists_applied_trades_in_order(store):
    store.trade("a", "FishCo", "buy", 1)
    store.trade("b", "BoarCo", "sell", 2)
    assert [(t.seq, t.trade_id) for t in store.trades_after(0)] == [(1, "a"), (2, "b")]
    assert [t.trade_id for t in store.trades_after(1)] == ["b"]


def test_state_and_dedupe_survive_a_restart(tmp_path):
    store = CatalogStore(tmp_path)
    store.trade("t1", "FishCo", "buy", 3)
    store.stop()
    again = CatalogStore(tmp_path)
    assert again.lookup("FishCo")[2:4] == (97, 3)
    assert again.trade("t1", "FishCo", "buy", 3).seq == 1
    assert again.lookup("FishCo").quantity == 97


def test_journal_wins_over_a_stale_snapshot(tmp_path):
    """A crash after the journal write but before the snapshot loses nothing."""
    store = CatalogStore(tmp_path)
    snapshot = (tmp_path / "stock_db.csv").read_text()
    store.trade("t1", "FishCo", "buy", 3)
    store.stop()
    (tmp_path / "stock_db.csv").write_text(snapshot)
    again = CatalogStore(tmp_path)
    assert again.lookup("FishCo").quantity == 97
    again.stop()
    assert "FishCo,11.5,97,3,1" in (tmp_path / "stock_db.csv").read_text()


def test_concurrent_buyers_never_oversell(store):
    results = []

    def buy(n):
        try:
            store.trade(f"t{n}", "MenhirCo", "buy", 7)
            results.append(True)
        except RpcError:
            results.append(False)

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 14
    assert store.lookup("MenhirCo").quantity == 100 - 14 * 7


def trade_many(store, count, start=0):
    for n in range(start, start + count):
        store.trade(f"t{n}", "FishCo", "buy" if n % 2 else "sell", 1)


def test_checkpoints_rotate_the_journal_and_drop_folded_segments(tmp_path):
    store = CatalogStore(tmp_path, window_keys=25, segment_trades=10)
    for start in range(0, 60, 5):
        trade_many(store, 5, start)
        store.checkpoint()
    # Kept: the segments with a trade in the window (the last 25 trades) and the current one.
    assert [p.name for p in journal_segments(tmp_path)] == [
        "catalog_journal-000000000031.csv", "catalog_journal-000000000041.csv", "catalog_journal-000000000051.csv",
        "catalog_journal-000000000061.csv"]
    assert [t.seq for t in store.trades_after(55)] == [56, 57, 58, 59, 60]
    assert len(store.trades_after(0)) == 25  # the window
    store.stop()
    again = CatalogStore(tmp_path, window_keys=25, segment_trades=10)
    assert again.lookup("FishCo")[2:4] == (100, 60)
    assert again.trade("t59", "FishCo", "buy", 1).seq == 60  # still in the window: not applied again
    assert again.trade("t0", "FishCo", "sell", 1).seq == 61  # forgotten: a new trade
    again.stop()


def test_every_crash_point_of_a_checkpoint_recovers(tmp_path):
    """Copies of the files at each step of a checkpoint, each restarted: same state and dedupe."""
    states = []
    store = CatalogStore(tmp_path / "live", window_keys=4, segment_trades=3)
    trade_many(store, 6)
    store.checkpoint()
    states.append(shutil.copytree(tmp_path / "live", tmp_path / "folded"))
    trade_many(store, 3, 6)  # the segment is full: the next checkpoint rotates
    store._journal.append((10, "t-torn", "FishCo", "buy", 1, 0, 0))  # a crash mid-append would tear this
    with open(store._journal.path, "r+b") as f:
        f.truncate(f.seek(0, 2) - 3)
    states.append(shutil.copytree(tmp_path / "live", tmp_path / "torn"))
    with open(store._journal.path, "r+b") as f:
        f.truncate(f.read().rindex(b"\n") + 1)
    store._journal.size = store._journal.path.stat().st_size
    # Killed after the new segment was created, before the snapshot was replaced.
    snapshot = (tmp_path / "live" / "stock_db.csv").read_bytes()
    store.checkpoint()
    states.append(shutil.copytree(tmp_path / "live", tmp_path / "rotated"))
    (tmp_path / "rotated" / "stock_db.csv").write_bytes(snapshot)
    # Killed after the snapshot, before old segments were deleted: they are all still there.
    states.append(tmp_path / "undeleted")
    shutil.copytree(tmp_path / "folded", states[-1])
    shutil.copy(tmp_path / "live" / "stock_db.csv", states[-1])
    for path in journal_segments(tmp_path / "live"):
        shutil.copy(path, states[-1])
    store.stop()
    for path in states[1:]:
        again = CatalogStore(path, window_keys=4, segment_trades=3)
        assert again.lookup("FishCo")[2:4] == (101, 9), path  # 5 sells, 4 buys; the torn line is gone
        assert again.trade("t8", "FishCo", "sell", 1).seq == 9, path
        assert again.trade("t-new", "FishCo", "sell", 1).seq == 10, path
        again.stop()


def test_a_full_journal_disk_changes_nothing(store, monkeypatch):
    store.trade("t1", "FishCo", "buy", 1)

    def full(row):
        raise DiskFull

    monkeypatch.setattr(store._journal, "append", full)
    with pytest.raises(DiskFull):
        store.trade("t2", "FishCo", "buy", 5)
    assert store.lookup("FishCo")[2:4] == (99, 1)
    assert [t.trade_id for t in store.trades_after(0)] == ["t1"]
    monkeypatch.undo()
    assert store.trade("t2", "FishCo", "buy", 5).seq == 2


def test_after_seq_makes_a_remembered_id_a_new_trade_once(tmp_path):
    store = CatalogStore(tmp_path)
    first = store.trade("k", "FishCo", "buy", 1)
    assert store.trade("k", "FishCo", "buy", 1) == first  # a redelivery
    # The order log numbered trade `first` and forgot its id: the retry is a new trade, and its own
    # redelivery (the same after_seq) gets that new trade, not a third.
    renewed = store.trade("k", "FishCo", "buy", 1, after_seq=first.seq)
    assert renewed.seq == first.seq + 1
    assert store.trade("k", "FishCo", "buy", 1, after_seq=first.seq) == renewed
    assert store.lookup("FishCo").quantity == 98
    store.stop()

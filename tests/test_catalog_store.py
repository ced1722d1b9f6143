"""Unit tests for the catalog store: lookups, atomic trades, dedupe and recovery."""
import threading

import pytest

from broker import RpcError
from broker.storage import read_table
from catalog_worker.store import DEFAULT_PRICES, STOCK_COLUMNS, CatalogStore


@pytest.fixture
def store(tmp_path):
    store = CatalogStore(tmp_path)
    yield store
    store.close()


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
    store.close()
    again = CatalogStore(tmp_path)
    assert again.lookup("FishCo")[2:4] == (97, 3)
    assert again.trade("t1", "FishCo", "buy", 3).seq == 1
    assert again.lookup("FishCo").quantity == 97


def test_journal_wins_over_a_stale_snapshot(tmp_path):
    """A crash after the journal write but before the snapshot loses nothing."""
    store = CatalogStore(tmp_path)
    snapshot = (tmp_path / "stock_db.csv").read_text()
    store.trade("t1", "FishCo", "buy", 3)
    store.close()
    (tmp_path / "stock_db.csv").write_text(snapshot)
    assert CatalogStore(tmp_path).lookup("FishCo").quantity == 97
    assert "FishCo,11.5,97,3" in (tmp_path / "stock_db.csv").read_text()


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

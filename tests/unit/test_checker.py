"""The nemesis checker on synthetic histories and files: a correct run passes, each violation is caught."""
import pytest

from bench.checker import PROPERTIES, check, longest_gap, saved_stocks, unavailability
from bench.history import outcome
from ledger.orders import Order, OrderLog
from ledger.position import Position, PositionFile
from ledger.stocks import Stocks

HEADER = "transaction_number,stock_name,order_type,trade_quantity,trade_id,catalog_seq\n"
BUY = {"name": "GameStart", "type": "buy", "quantity": 2}
SELL = {"name": "GameStart", "type": "sell", "quantity": 2}


def op(key, order, *attempts):
    """An operation whose attempts are (status, number) pairs, one second apart."""
    return {"key": key, "order": order,
            "attempts": [[i, i + 0.5, status, number] for i, (status, number) in enumerate(attempts)]}


def log(*rows):
    """An order log's bytes from (trade id, order) rows, numbered in turn."""
    return (HEADER + "".join(f"{n},{o['name']},{o['type']},{o['quantity']},{key},{n + 1}\n"
                             for n, (key, o) in enumerate(rows))).encode()


def stocks(quantity=100, volume=0, seq=0):
    """A stock table in which only GameStart has traded."""
    return Stocks([("GameStart", 15.99, quantity, volume, seq), ("FishCo", 11.5, 100, 0, 0)])


def tables(logs, table, **others):
    """The same stock table for each replica of ``logs``, but for ``others``."""
    return {replica: others.get(replica, table) for replica in logs}


HISTORY = [op("a", BUY, (504, None), (200, 0)), op("b", SELL, (200, 1), (200, 1)),
           op("c", BUY, ("transport", None)), op("d", BUY, (409, None))]
GOOD = log(("a", BUY), ("b", SELL), ("c", BUY))  # c's outcome was unknown: it happened


def violated(found):
    return {name for name, descriptions in found.items() if descriptions}


def test_a_correct_run_violates_nothing():
    logs = {"order-0": GOOD, "order-1": GOOD, "catalog-0": GOOD}
    found = check(HISTORY, logs, tables(logs, stocks(98, 6, 3)))
    assert set(found) == set(PROPERTIES) and not violated(found)
    # An unknown outcome may also not have happened.
    logs = {"r0": log(("a", BUY), ("b", SELL))}
    assert not violated(check(HISTORY, logs, tables(logs, stocks(100, 4, 2))))


@pytest.mark.parametrize("history, logs, catalog, broken", [
    # an acknowledged trade missing from one replica's log (which its stock table then disagrees with)
    (HISTORY[:2], {"r0": log(("a", BUY), ("b", SELL)), "r1": log(("a", BUY))}, stocks(100, 4, 2),
     {"acknowledged", "identical", "catalog"}),
    # an acknowledged trade logged at another number than it was given
    (HISTORY[:2], {"r0": log(("b", SELL), ("a", BUY))}, stocks(100, 4, 2), {"acknowledged"}),
    # logged as another order than the one placed
    (HISTORY[:2], {"r0": log(("a", SELL), ("b", SELL))}, stocks(104, 4, 2), {"acknowledged"}),
    # a trade logged twice
    (HISTORY[:2], {"r0": log(("a", BUY), ("b", SELL), ("a", BUY))}, stocks(98, 6, 3), {"once"}),
    # a gap in the numbers
    (HISTORY[:1], {"r0": (HEADER + "0,GameStart,buy,2,a,1\n2,GameStart,sell,2,x,2\n").encode()},
     stocks(100, 4, 3), {"gapless"}),
    # one number acknowledged for two trades
    ([HISTORY[0], op("e", BUY, (200, 0))], {"r0": log(("a", BUY))}, stocks(98, 2, 1), {"unique", "acknowledged"}),
    # a retry with the same key got another number
    ([op("a", BUY, (200, 0), (200, 1))], {"r0": log(("a", BUY), ("a2", BUY))}, stocks(96, 4, 2), {"retries"}),
    # a trade refused with a 409 was applied anyway
    ([HISTORY[3]], {"r0": log(("d", BUY))}, stocks(98, 2, 1), {"refused"}),
    # an answer that tells the client nothing it can act on (a bug), though the trade went through on retry
    ([op("a", BUY, (500, None), (200, 0))], {"r0": log(("a", BUY))}, stocks(98, 2, 1), {"answers"}),
    # a stock table is not the initial stock plus the log: its quantity, or its seq
    (HISTORY[:2], {"r0": log(("a", BUY), ("b", SELL))}, stocks(98, 4, 2), {"catalog"}),
    (HISTORY[:2], {"r0": log(("a", BUY), ("b", SELL))}, stocks(100, 4, 1), {"catalog"}),
    # a stock traded in the log is missing from the table
    (HISTORY[:2], {"r0": log(("a", BUY), ("b", SELL))}, Stocks([("FishCo", 11.5, 100, 0, 0)]), {"catalog"}),
    # two replicas differ in bytes only
    (HISTORY[:2], {"r0": GOOD[:-1] + b"\n", "r1": GOOD[:-1] + b"\r\n"}, stocks(98, 6, 3), {"identical"}),
])
def test_each_violation_is_caught(history, logs, catalog, broken):
    assert violated(check(history, logs, tables(logs, catalog))) == broken


def test_a_catalog_replica_whose_table_lags_its_log_is_caught():
    logs = {"order-0": GOOD, "catalog-0": GOOD}
    found = check(HISTORY, logs, tables(logs, stocks(98, 6, 3), **{"catalog-0": stocks(100, 4, 2)}))
    assert violated(found) == {"catalog"} and found["catalog"][0].startswith("catalog-0: GameStart")


def test_saved_stocks_reads_what_a_replica_saves(tmp_path):
    orders, saved = OrderLog(tmp_path), Stocks()
    order = Order(0, "GameStart", "buy", 3, "t", 1)
    orders.append(order)
    saved.apply(order)
    PositionFile(tmp_path / "stream_position").save(Position(5, 1, "m", saved))  # as a replica saves it
    orders.close()
    next_number, table = saved_stocks(tmp_path)
    assert next_number == 1 and table.rows() == saved.rows()
    assert table.get("GameStart") == ("GameStart", 15.99, 97, 3, 1)


def test_outcomes():
    assert [outcome(o) for o in HISTORY] == ["ok", "ok", "unknown", "refused"]


def test_longest_gap_overlapping_a_fault():
    times = [1.0, 2.0, 6.0, 6.5, 9.0]
    assert longest_gap(times, 2.5, 3.0) == 3.5  # the fault came and went between two successes
    assert longest_gap(times, 5.0, 8.0) == 2.5  # from its start (an earlier outage is not its own)
    assert longest_gap(times, 9.5, 10.0) == float("inf")  # nothing succeeded after it


def test_unavailability_per_fault_type():
    history = [op(str(i), BUY) for i in range(4)]
    for operation, end in zip(history, (1.0, 2.0, 6.0, 8.0), strict=True):
        operation["attempts"] = [[end - 0.1, end, 200, 0]]
    episodes = [{"fault": "pause-leader", "start": 2.5, "end": 4.0, "inherent": False, "caught_up_s": 0.5},
                {"fault": "pause-leader", "start": 6.5, "end": 7.0, "inherent": False, "caught_up_s": 0.2},
                {"fault": "partition-follower", "start": 6.5, "end": 7.0, "inherent": False, "caught_up_s": None},
                {"fault": "broker-restart", "start": 2.2, "end": 5.0, "inherent": True}]
    assert unavailability(history, episodes) == {
        "pause-leader": {"injected": 2, "longest_gap_s": 3.5, "longest_catch_up_s": 0.5},
        "partition-follower": {"injected": 1, "longest_gap_s": 1.5, "longest_catch_up_s": float("inf")},
        "broker-restart": {"injected": 1, "longest_gap_s": 1.0}}

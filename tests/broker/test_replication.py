"""Order log replication through the stream: catch-up, stale copies, and a zombie leader."""
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pika
import pytest

from broker import RpcError
from ledger import replication
from ledger.orders import Order, OrderLog
from ledger.replication import DiskWatch, ReplicatedLog
from ledger.stream import ORDER, stream_is_gone

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def replica(settings, data_dir, on_diverged=None, on_step_down=None):
    """A started ReplicatedLog on ``data_dir``, its disk watched; ``on_diverged(reason)`` hears of its
    failure, ``on_step_down()`` of its stepping down."""
    orders = OrderLog(data_dir)
    log = ReplicatedLog(replace(settings, data_dir=data_dir), orders, data_dir.name)
    log.on_step_down = on_step_down
    watch = DiskWatch(log)
    log.start(on_failure=on_diverged and (lambda component: on_diverged(str(component.failure))))
    watch.start()
    try:
        yield log
    finally:
        watch.stop()
        log.stop()
        orders.close()


def declare_stream(settings, admin, **arguments):
    """Make the test's order stream before any replica does."""
    admin.channel.queue_declare(settings.queue("orders"), durable=True,
                                arguments={"x-queue-type": "stream", **arguments})


def wait_for_reason(reasons, timeout=10):
    deadline = time.monotonic() + timeout
    while not reasons:
        assert time.monotonic() < deadline, "the replica did not stop"
        time.sleep(0.02)
    return reasons[0]


def trade(log, n):
    return log.propose(f"t{n}", "FishCo", "buy", 1)


def wait_for(log, count, timeout=10):
    deadline = time.monotonic() + timeout
    while log.orders.next_number < count:
        assert time.monotonic() < deadline, f"caught up to {log.orders.next_number} of {count}"
        time.sleep(0.02)


def file_bytes(path):
    return (path / "order_log.csv").read_bytes()


def test_a_replica_with_an_empty_or_stale_dir_catches_up_byte_identical(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        assert [trade(leader, n).number for n in range(3)] == [0, 1, 2]
        with replica(settings, tmp_path / "b") as follower:
            wait_for(follower, 3)
        stale = tmp_path / "stale"
        shutil.copytree(tmp_path / "b", stale)
        assert [trade(leader, n).number for n in range(3, 6)] == [3, 4, 5]
        for data_dir in (tmp_path / "b", stale, tmp_path / "empty"):
            with replica(settings, data_dir) as follower:
                wait_for(follower, 6)
                assert follower.find("t4").number == 4
        assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b") == file_bytes(stale) == file_bytes(
            tmp_path / "empty")


def test_a_recorded_trade_keeps_its_number(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        first = trade(leader, 0)
        assert trade(leader, 0) == first and leader.orders.next_number == 1


def test_a_zombie_leader_cannot_take_a_number_the_new_leader_gave(settings, tmp_path):
    with replica(settings, tmp_path / "a") as old, replica(settings, tmp_path / "b") as new:
        assert trade(old, 0).number == 0
        new.lead()  # takes over without the old leader knowing
        assert trade(new, 1).number == 1
        # The old leader still thinks number 1 is next: the stream refuses that, it catches up, tries again.
        assert old.leading and trade(old, 2).number == 2
        wait_for(new, 3)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert [line.split(b",")[4] for line in file_bytes(tmp_path / "a").splitlines()[1:]] == [b"t0", b"t1", b"t2"]


def test_entries_out_of_turn_or_malformed_are_skipped_by_every_replica(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        trade(leader, 0)
        with pika.BlockingConnection(pika.URLParameters(settings.amqp_url)) as connection:
            channel = connection.channel()
            for body in (b"not json", b'{"number": 7}',
                         b'{"number": 9, "name": "FishCo", "type": "buy", "quantity": 1, "trade_id": "x", '
                         b'"catalog_seq": 9}'):
                channel.basic_publish("", settings.queue("orders"), body, pika.BasicProperties(type=ORDER))
        assert trade(leader, 1).number == 1
        with replica(settings, tmp_path / "b") as follower:
            wait_for(follower, 2)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_a_log_that_disagrees_with_the_stream_stops_the_replica(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        trade(leader, 0)
    other = OrderLog(tmp_path / "b")
    other.append(Order(0, "FishCo", "sell", 1, "someone-else", 1))
    other.close()
    reasons = []
    with replica(settings, tmp_path / "b", on_diverged=reasons.append) as diverged:
        assert "someone-else" in wait_for_reason(reasons)  # the log's detail; clients get a short 503
        with pytest.raises(RpcError, match=r"^this order replica cannot follow the order stream$"):
            diverged.lead()


def test_a_stream_an_order_worker_makes_keeps_order_stream_max_age(settings, tmp_path, admin):
    with replica(replace(settings, order_stream_max_age="3D"), tmp_path / "a") as leader:
        trade(leader, 0)
    # RabbitMQ refuses to redeclare a stream with another retention, naming the one it has.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="current is '3D'"):
        declare_stream(settings, admin, **{"x-max-age": "1D"})


def test_a_replica_the_streams_retention_left_behind_stops_and_says_why(settings, tmp_path, admin):
    declare_stream(settings, admin, **{"x-max-age": "1s", "x-stream-max-segment-size-bytes": 2000})
    with replica(settings, tmp_path / "a") as leader:  # takes the stream as it is
        for n in range(40):
            trade(leader, n)
        time.sleep(1.5)
        for n in range(40, 80):  # new segments, so the old ones expire
            trade(leader, n)
    reasons = []
    with replica(settings, tmp_path / "new", on_diverged=reasons.append) as late:
        assert "retention dropped entries" in wait_for_reason(reasons)
        assert late.orders.next_number == 0  # nothing applied from the middle of the log
        with pytest.raises(RpcError):
            late.lead()
    # The order worker itself then exits, saying why, rather than lead with a log it cannot trust.
    env = {**os.environ, "AMQP_URL": settings.amqp_url, "BAZAAR_NAMESPACE": settings.namespace,
           "DATA_DIR": str(tmp_path / "process")}
    worker = subprocess.run([sys.executable, "-m", "order_worker"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert worker.returncode == 1 and "retention dropped entries" in worker.stderr



def test_a_replica_whose_stream_is_deleted_stops_and_makes_no_new_one(settings, tmp_path, admin):
    reasons = []
    with replica(settings, tmp_path / "a", on_diverged=reasons.append) as leader:
        for n in range(3):
            trade(leader, n)
        admin.channel.queue_delete(settings.queue("orders"))
        assert "is gone" in wait_for_reason(reasons)
    # A new, empty stream would have this replica wait forever at its old position.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
        admin.channel.queue_declare(settings.queue("orders"), passive=True)


@pytest.mark.parametrize("text, gone", [
    ("NOT_FOUND - no queue 'ns.orders' in vhost '/'", True),
    # What a broker answers between start_app and its streams being up again: not a lost stream.
    ("NOT_FOUND - home node 'rabbit@localhost' of durable queue 'ns.orders' in vhost '/' is down or "
     "inaccessible", False),
])
def test_only_no_such_queue_means_the_stream_is_gone(text, gone):
    assert stream_is_gone(pika.exceptions.ChannelClosedByBroker(404, text)) is gone


def test_a_replica_with_a_damaged_line_rebuilds_its_log_from_the_stream(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        for n in range(5):
            trade(leader, n)
        with replica(settings, tmp_path / "b") as follower:
            wait_for(follower, 5)
        path = tmp_path / "b" / "order_log.csv"
        path.write_bytes(path.read_bytes().replace(b"t2,FishCo", b"t2,FishCx").replace(b",t2,", b",t9,"))
        with replica(settings, tmp_path / "b") as follower:
            wait_for(follower, 5)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


@pytest.mark.parametrize("entries_after, reason", [(1, "ends at offset"), (8, "another entry at offset")])
def test_a_stream_shorter_than_the_position_or_replaced_stops_the_replica(settings, tmp_path, admin, entries_after,
                                                                          reason):
    with replica(settings, tmp_path / "a") as leader:
        for n in range(3):
            trade(leader, n)
    # The broker lost the stream's tail (or all of it) and new entries were written since.
    admin.channel.queue_delete(settings.queue("orders"))
    declare_stream(settings, admin)
    for _ in range(entries_after):
        admin.channel.basic_publish("", settings.queue("orders"), b"{}", pika.BasicProperties(type="sync"))
    reasons = []
    with replica(settings, tmp_path / "a", on_diverged=reasons.append):
        assert reason in wait_for_reason(reasons)


def test_every_replica_refuses_an_order_that_would_oversell_and_keeps_the_same_stocks(settings, tmp_path):
    with replica(settings, tmp_path / "a") as old, replica(settings, tmp_path / "b") as new:
        assert old.propose("t0", "FishCo", "buy", 60).number == 0
        new.lead()  # takes over without the old leader knowing
        assert new.propose("t1", "FishCo", "buy", 30).number == 1
        wait_for(old, 2)
        with pytest.raises(RpcError, match="insufficient quantity of FishCo: 10 available"):
            old.propose("t2", "FishCo", "buy", 20)  # checked against the stocks the stream made
        with replica(settings, tmp_path / "c") as late:
            wait_for(late, 2)
            assert [list(r.stocks) for r in (old, new, late)] == [list(old.stocks)] * 3
    assert old.stocks.get("FishCo").quantity == 10 and file_bytes(tmp_path / "a") == file_bytes(tmp_path / "c")


def test_trades_proposed_while_the_reader_is_busy_go_out_in_one_entry(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        leader.propose("first", "FishCo", "buy", 1)
        start = leader.position
        connection, _ = leader._link
        connection.add_callback_threadsafe(lambda: time.sleep(0.5))  # the reader is busy for a while
        with ThreadPoolExecutor(8) as pool:
            orders = list(pool.map(lambda n: leader.propose(f"t{n}", "FishCo", "buy", 1), range(8)))
        assert sorted(order.number for order in orders) == list(range(1, 9))
        assert leader.position - start == 1 and leader.stocks.get("FishCo").quantity == 91


def test_a_trade_proposed_as_the_broker_closes_the_stream_connection_is_a_503(settings, tmp_path, closed_connection):
    with replica(settings, tmp_path / "a") as leader:
        leader.propose("first", "FishCo", "buy", 1)
        link = leader._link
        leader._link = closed_connection, link[1]  # closed by the broker; the reader has not noticed yet
        with pytest.raises(RpcError) as refused:
            leader.propose("t1", "FishCo", "buy", 1)  # its order would have gone out in the next entry
        assert (refused.value.code, refused.value.message) == (503, replication.NO_STREAM)
        leader.resign()
        with pytest.raises(RpcError) as refused:
            leader.lead()  # its sync marker would have gone out
        assert (refused.value.code, refused.value.message) == (503, replication.NO_STREAM)
        assert not leader._outbox and not leader._waiters and not leader._pending  # nothing stranded
        leader._link = link
        assert leader.propose("t1", "FishCo", "buy", 1).number == 1


def test_the_stocks_are_saved_with_the_position_and_read_back(settings, tmp_path):
    with replica(settings, tmp_path / "a") as leader:
        leader.propose("t0", "BoarCo", "sell", 5)
    with replica(settings, tmp_path / "a") as again:
        assert again.stocks.get("BoarCo")[2:] == (105, 5, 1) and again.position > 0


def test_a_follower_behind_reads_on_without_pausing_between_rounds(settings, tmp_path, monkeypatch):
    # One poll reads ~250 of these entries; a follower used to pause a round after each while behind.
    monkeypatch.setattr(replication, "FOLLOWER_ROUND", 2.0)
    with replica(settings, tmp_path / "a") as leader:
        for n in range(1000):
            leader.propose(f"t{n}", "FishCo", "buy" if n % 2 else "sell", 1)
        started = time.monotonic()
        with replica(settings, tmp_path / "b") as follower:
            wait_for(follower, 1000, timeout=12)
            assert time.monotonic() - started < 2 * replication.FOLLOWER_ROUND, "it paused while behind"

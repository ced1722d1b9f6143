"""A replica whose disk fails (EIO, EROFS, full, a slow fsync) stops leading, counts it, and follows again."""
import contextlib
import errno
import os
import random
import time
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from bench.failover import longest_pause, wait_identical
from bench.faults import fill, small_disk
from bench.stack import free_port
from broker.server import StepDown
from conftest import Stack
from test_failover import leader
from test_faults import Load, check_invariants
from test_replication import file_bytes, replica, trade, wait_for


def faults(kind):
    return REGISTRY.get_sample_value("bazaar_storage_faults_total", {"kind": kind}) or 0


def sick(monkeypatch, directory, names, fault):
    """Make the calls ``os.<name>(fd, ...)`` on files under ``directory`` run ``fault()`` (which raises or
    sleeps) first, as that replica's disk would; other replicas in this process are not touched.
    Return the function that heals the disk."""
    real = {name: getattr(os, name) for name in names}

    def patched(name):
        def call(fd, *args):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(directory)):
                fault()
            return real[name](fd, *args)
        return call

    for name in names:
        monkeypatch.setattr(os, name, patched(name))
    return lambda: [monkeypatch.setattr(os, name, function) for name, function in real.items()]


def raising(error):
    def fault():
        raise error
    return fault


@pytest.mark.parametrize("names, error, kind", [
    (("fdatasync", "fsync"), OSError(errno.EIO, "Input/output error"), "io"),
    (("write",), OSError(errno.EROFS, "Read-only file system"), "read-only"),
    (("write",), OSError(errno.ENOSPC, "No space left on device"), "full"),
])
def test_a_write_fault_steps_the_leader_down_and_it_follows_again_when_the_disk_is_back(
        settings, tmp_path, monkeypatch, names, error, kind):
    stepped_down, before = [], faults(kind)
    with replica(settings, tmp_path / "a", on_step_down=lambda: stepped_down.append(1)) as leader, \
            replica(settings, tmp_path / "b") as other:
        assert trade(leader, 0).number == 0
        heal = sick(monkeypatch, tmp_path / "a", names, raising(error))
        with pytest.raises(StepDown):
            trade(leader, 1)
        assert stepped_down and not leader.leading and faults(kind) == before + 1
        assert leader.disk.fault.kind == kind
        assert trade(other, 1).number == 1  # the standby takes over, the sick one's entry included or not
        heal()
        assert trade(other, 2).number == 2
        wait_for(leader, 3)  # probed, and reading the stream again from its last durable entry
        assert leader.disk.fault is None
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


@pytest.mark.parametrize("stall", [0.5, 3.0])
def test_an_fsync_slower_than_the_limit_or_stalled_steps_the_leader_down(settings, tmp_path, monkeypatch, stall):
    before = faults("slow")
    with replica(replace(settings, fsync_limit=0.2), tmp_path / "a") as leader:
        assert trade(leader, 0).number == 0
        heal = sick(monkeypatch, tmp_path / "a", ("fdatasync", "fsync"), lambda: time.sleep(stall))
        started = time.monotonic()
        with pytest.raises(StepDown):
            trade(leader, 1)
        # A stalled fsync is noticed while it lasts (the disk watch), not when it ends.
        assert time.monotonic() - started < 1.5 and faults("slow") > before and not leader.leading
        heal()
        time.sleep(stall)  # the fsync in progress ends (slowly: one more fault), then the probe passes
        deadline = time.monotonic() + 5
        while leader.disk.fault is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        wait_for(leader, 2)  # the entry was durable, only slow: it stays
        assert trade(leader, 1).number == 1


@pytest.mark.slow
def test_a_leader_whose_disk_fills_up_hands_over_within_5_s_and_catches_up_after(settings, tmp_path):
    stack = Stack(settings, free_port(), tmp_path, replicas=3)
    with contextlib.ExitStack() as disks:
        for name in stack.services:
            if name.startswith("order") and disks.enter_context(small_disk(stack.replica_dir(name), "4m")) is None:
                pytest.skip(f"cannot mount a tmpfs here: {small_disk.refused}")
        with stack:
            with Load(stack.url, random.Random(15), clients=4, pause=0.1) as load:
                time.sleep(2)
                sick_one = leader(stack)
                fill(stack.replica_dir(sick_one) / "filler")
                time.sleep(4)
                os.remove(stack.replica_dir(sick_one) / "filler")
                time.sleep(2)
            logs = [stack.replica_dir(name) / "order_log.csv" for name in stack.replicas]
            identical, _, lines = wait_identical(logs, 20)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_ports[sick_one]}/metrics").read()
            assert set(stack.stop().values()) == {0}
        gap = longest_pause(load.successes)
        print(f"\nfilled the disk of {sick_one} for 4 s: longest pause in successful trades {gap:.2f} s; "
              f"trades {len(load.succeeded)}, statuses {dict(load.statuses)}")
        assert gap < 5.0 and not load.uncertain
        assert set(load.statuses) <= {200, 409, 503, 504}, load.statuses  # no 507: a standby took over
        assert identical, lines
        assert b'bazaar_storage_faults_total{kind="full"}' in metrics
        log_text = (tmp_path / f"{sick_one}.log").read_text()
        assert "storage fault" in log_text and "the disk takes writes again" in log_text
        check_invariants(settings, load.succeeded, order_log=f"{sick_one}/order_log.csv")

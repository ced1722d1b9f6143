"""A replica whose disk fails (EIO, EROFS, full, a slow fsync) stops leading, counts it, and follows again."""
import errno
import os
import time
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY
from test_replication import file_bytes, replica, trade, wait_for

from broker.server import StepDown
from ledger.replication import ReplicatedLog


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
    # A slow reconnect widens the gap between the probe's all-clear and the next subscription: a
    # trade in that gap waits for the stream rather than failing on the dropped connection.
    monkeypatch.setattr(ReplicatedLog, "retry_pause", 1.0)
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

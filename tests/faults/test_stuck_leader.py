"""A leader that is alive but stuck (SIGSTOP, cut off from the broker) or whose disk fills up loses the lead
within seconds, and follows again when it is back."""
import contextlib
import os
import random
import shutil
import time

import pytest
from test_faults import Load, check_invariants, wait_until_replicated

from bench.failover import longest_pause, wait_identical
from bench.faults import cut_off, fill, frozen, small_disk
from harness.stack import Stack

FROZEN_S = 8.0


@pytest.mark.slow
def test_a_frozen_leader_is_replaced_within_5_s_and_follows_again_without_a_restart(replicated, settings):
    rng = random.Random(int(os.environ.get("FAULT_SEED", 15)))
    with Load(replicated.url, rng, clients=4, pause=0.1) as load:
        time.sleep(2)
        stuck = replicated.leader()
        process = replicated.processes[stuck]
        with frozen(process):
            time.sleep(FROZEN_S)
        time.sleep(3)
    gap = longest_pause(load.successes)
    log_text = (replicated.log_dir / f"{stuck}.log").read_text()
    replicating = wait_until_replicated(settings, ("order-0", "catalog"))
    logs = [replicated.replica_dir(name) / "order_log.csv" for name in replicated.replicas]
    identical, _, lines = wait_identical(logs, 20)
    print(f"\nfroze {stuck} for {FROZEN_S} s: longest pause in successful trades {gap:.2f} s; trades "
          f"{len(load.succeeded)}, statuses {dict(load.statuses)}; replicated in {replicating:.1f} s")
    assert process.poll() is None  # it woke up and runs on: no restart
    assert set(replicated.stop().values()) == {0}
    assert gap < 5.0
    assert set(load.statuses) <= {200, 409, 503, 504}, load.statuses
    assert not load.uncertain
    assert identical, lines
    # It lost the queue while frozen, and numbered nothing more after it woke (another replica leads).
    assert log_text.count("leading:") == 1, log_text[-3000:]
    check_invariants(settings, load.succeeded, replicas=("order-0", "catalog"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iptables") is None or os.geteuid() != 0, reason="needs root and iptables")
def test_a_leader_cut_off_from_the_broker_is_replaced_within_5_s_and_follows_again(replicated, settings):
    with Load(replicated.url, random.Random(15), clients=4, pause=0.1) as load:
        time.sleep(2)
        stuck = replicated.leader()
        with cut_off(replicated.processes[stuck].pid) as ports:
            time.sleep(FROZEN_S)
        time.sleep(3)
    gap = longest_pause(load.successes)
    logs = [replicated.replica_dir(name) / "order_log.csv" for name in replicated.replicas]
    identical, _, lines = wait_identical(logs, 20)
    log_text = (replicated.log_dir / f"{stuck}.log").read_text()
    print(f"\ncut {stuck} off the broker ({len(ports)} connections) for {FROZEN_S} s: longest pause in "
          f"successful trades {gap:.2f} s; trades {len(load.succeeded)}, statuses {dict(load.statuses)}")
    assert ports and replicated.processes[stuck].poll() is None
    assert set(replicated.stop().values()) == {0}
    assert gap < 5.0 and not load.uncertain
    assert set(load.statuses) <= {200, 409, 503, 504}, load.statuses
    assert identical, lines
    assert log_text.count("leading:") == 1, log_text[-3000:]
    check_invariants(settings, load.succeeded, replicas=("order-0", "catalog"))


@pytest.mark.slow
def test_a_leader_whose_disk_fills_up_hands_over_within_5_s_and_catches_up_after(settings, tmp_path):
    stack = Stack(settings, log_dir=tmp_path, replicas=3)
    with contextlib.ExitStack() as disks:
        for name in stack.services:
            if name.startswith("order") and disks.enter_context(small_disk(stack.replica_dir(name), "4m")) is None:
                pytest.skip(f"cannot mount a tmpfs here: {small_disk.refused}")
        with stack:
            with Load(stack.url, random.Random(15), clients=4, pause=0.1) as load:
                time.sleep(2)
                sick_one = stack.leader()
                fill(stack.replica_dir(sick_one) / "filler")
                time.sleep(4)
                os.remove(stack.replica_dir(sick_one) / "filler")
                time.sleep(2)
            logs = [stack.replica_dir(name) / "order_log.csv" for name in stack.replicas]
            identical, _, lines = wait_identical(logs, 20)
            faults = stack.metric(sick_one, "bazaar_storage_faults_total", {"kind": "full"})
            assert set(stack.stop().values()) == {0}
        gap = longest_pause(load.successes)
        print(f"\nfilled the disk of {sick_one} for 4 s: longest pause in successful trades {gap:.2f} s; "
              f"trades {len(load.succeeded)}, statuses {dict(load.statuses)}")
        assert gap < 5.0 and not load.uncertain
        assert set(load.statuses) <= {200, 409, 503, 504}, load.statuses  # no 507: a standby took over
        assert identical, lines
        assert faults and faults >= 1
        log_text = (tmp_path / f"{sick_one}.log").read_text()
        assert "storage fault" in log_text and "the disk takes writes again" in log_text
        check_invariants(settings, load.succeeded, replicas=(f"{sick_one}", "catalog"))

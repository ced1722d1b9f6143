"""Three order replicas: the leader (the queue's active consumer) is killed again and again under load."""
import os
import random
import shutil
import time

import pytest
from test_faults import Load, check_invariants, wait_until_replicated

from bench.failover import gaps, wait_identical

LEADER_KILLS = 10


def restart(stack, name, rng, snapshots):
    """Start a replica again on its own directory, an empty one, or a stale copy of it."""
    directory, how = stack.replica_dir(name), rng.choice(("own", "empty", "stale"))
    if how != "own":
        shutil.rmtree(directory, ignore_errors=True)
    if how == "stale" and name in snapshots:
        shutil.copytree(snapshots[name], directory)
    stack.start(name)
    return how


def kill_replicas(stack, rng):
    """Kill the leader LEADER_KILLS times and a follower every third time; return when each leader died."""
    snapshots, killed_at, restarts = {}, [], []
    for round_ in range(LEADER_KILLS):
        time.sleep(rng.uniform(0.5, 1.0))
        victims = [stack.leader()]
        if round_ % 3 == 2:
            victims.append(rng.choice([name for name in stack.replicas if name != victims[0]]))
        snapshot = stack.log_dir / f"snapshot-{victims[-1]}"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(stack.replica_dir(victims[-1]), snapshot)  # stale by the time it is restored
        killed_at.append(time.monotonic())
        stack.kill(*victims)
        for name in victims:
            restarts.append(restart(stack, name, rng, snapshots))
        snapshots[victims[-1]] = snapshot
    return killed_at, restarts


@pytest.mark.slow
def test_leader_kills_lose_and_double_nothing_and_replicas_end_identical(replicated, settings):
    seed = int(os.environ.get("FAULT_SEED", random.randrange(10**6)))
    print(f"\nfailover seed {seed} (rerun with FAULT_SEED={seed}; thread timing still varies)")
    rng, started = random.Random(seed), time.monotonic()
    with Load(replicated.url, rng, clients=4, pause=0.1) as load:
        killed_at, restarts = kill_replicas(replicated, rng)
    pause = max(gaps(load.successes, killed_at))
    logs = [replicated.replica_dir(name) / "order_log.csv" for name in replicated.replicas]
    replicating = wait_until_replicated(settings, ("order-0", "catalog"))
    identical = wait_identical(logs, 20)[0]
    assert set(replicated.stop().values()) == {0}

    print(f"{len(killed_at)} leader kills, restarts {restarts}; trades attempted {len(load.attempted)}, "
          f"succeeded {len(load.succeeded)}, retries {load.retried}, statuses {dict(load.statuses)}; longest "
          f"pause in successful trades around a kill {pause:.2f} s; replicated in {replicating:.1f} s; "
          f"{time.monotonic() - started:.1f} s in all")
    assert set(load.statuses) <= {200, 409, 503, 504}, load.statuses  # every failure may be retried
    assert not load.uncertain
    # The bound every fault shares (issue 15). Kill -9 pauses were 0.05-0.6 s before the leader's
    # stream-end probe and the Pinger landed; CI has since seen 2.1 s, an open regression (docs/faults.md).
    assert pause < 5.0
    assert identical
    check_invariants(settings, load.succeeded, replicas=("order-0", "catalog"))

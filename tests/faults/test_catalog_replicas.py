"""The catalog has no single point of failure: two read replicas of the order stream, either of
which may be killed, frozen or lose its data directory while clients look up and trade."""
import random
import shutil
import signal
import threading
import time

import pytest
from test_faults import Load, check_invariants, wait_until_replicated

from bench.failover import longest_pause
from client.session import Session
from harness.stack import Stack

CATALOGS = ("catalog-0", "catalog-1")


class Lookups(threading.Thread):
    """A client looking stocks up back to back, each answer's status and time kept."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.answers, self.done = url, [], threading.Event()

    def run(self):
        session = Session(self.url, timeout=10)
        while not self.done.is_set():
            status = session.get("/stocks/GameStart")[0]
            self.answers.append((time.monotonic(), status))
        session.close()

    def longest_gap(self):
        """The longest time between two successful lookups."""
        return longest_pause([at for at, status in self.answers if status == 200])


@pytest.fixture
def catalogs(settings, tmp_path):
    """A stack with three order replicas and two catalog replicas, its cache off so lookups reach them."""
    with Stack(settings, env={"CACHE_SIZE": "0"}, log_dir=tmp_path, replicas=3, catalog_replicas=2) as stack:
        yield stack


@pytest.mark.slow
def test_killing_freezing_or_wiping_a_catalog_replica_loses_nothing(catalogs, settings):
    stack, rng = catalogs, random.Random(7)
    lookups = Lookups(stack.url)
    lookups.start()
    with Load(stack.url, rng, clients=3, pause=0.1) as load:
        time.sleep(1)
        stack.kill("catalog-0")  # kill -9; started again at once on its own data
        stack.start("catalog-0")
        time.sleep(1)
        stack.processes["catalog-1"].send_signal(signal.SIGSTOP)  # frozen: its lookups wait, then others serve
        time.sleep(2)
        stack.processes["catalog-1"].send_signal(signal.SIGCONT)
        time.sleep(1)
        stack.kill("catalog-0")  # a lost disk: it rebuilds the stocks from the stream
        shutil.rmtree(stack.replica_dir("catalog-0"))
        stack.start("catalog-0")
        time.sleep(1)
    lookups.done.set()
    lookups.join()
    replicas = ("order-0", "order-1", "order-2", *CATALOGS)
    replicating = wait_until_replicated(settings, replicas)
    assert set(stack.stop().values()) == {0}
    statuses = {status for _, status in lookups.answers}
    print(f"\n{len(lookups.answers)} lookups, statuses {statuses}, longest gap {lookups.longest_gap():.2f} s; "
          f"trades {len(load.succeeded)}, statuses {dict(load.statuses)}; replicated in {replicating:.1f} s")
    assert load.succeeded and not load.uncertain
    assert set(load.statuses) <= {200, 409}  # trading never waits for the catalog
    assert lookups.longest_gap() < 5.0
    check_invariants(settings, load.succeeded, replicas=replicas)

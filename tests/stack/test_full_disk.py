"""A full disk: trades answer 507 and change nothing, the episode is logged once, and trading resumes."""
import os

import pytest

from bench import faults
from harness.stack import wait_until

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


@pytest.fixture
def small_disk(settings):
    """The stack's data directory on a 256 KiB tmpfs (needs root, or a machine that allows mounting)."""
    with faults.small_disk(settings.data_dir) as disk:
        if disk is None:
            pytest.skip(f"cannot mount a tmpfs here: {faults.small_disk.refused}")
        yield disk


def test_a_full_disk_answers_507_changes_nothing_and_recovers(small_disk, stack, api):
    assert api.post("/orders", BUY)[:2] == (200, {"data": {"transaction_number": 0}})
    faults.fill(small_disk / "filler")
    for _ in range(3):
        status, body, _ = api.post("/orders", BUY)
        assert status == 507 and body["error"]["code"] == 507
        assert body["error"]["message"].startswith("insufficient storage")
    # The only replica cannot write, so it cannot catch up to lead: queries get the 507 too. (The
    # catalog replica, on the same disk, may not have fsynced trade 0 either: it answers once it has.)
    assert api.get("/orders/1")[0] == 507
    os.remove(small_disk / "filler")
    assert api.get("/orders/1")[0] == 404
    assert api.post("/orders", BUY)[:2] == (200, {"data": {"transaction_number": 1}})
    # The catalog replica shares the disk: it reads on once its probe finds room again (every second).
    wait_until(lambda: api.get("/stocks/GameStart")[0] == 200, 10, "the catalog replica did not recover")
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98  # the 507s changed nothing
    logs = stack.logs()
    assert logs.count("disk full") == 1 and logs.count("disk space is available again") == 1, logs

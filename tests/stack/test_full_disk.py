"""A full disk: trades answer 507 and change nothing, the episode is logged once, and trading resumes."""
import errno
import os
import subprocess

import pytest

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


@pytest.fixture
def small_disk(settings):
    """The stack's data directory on a 256 KiB tmpfs (needs root, or a machine that allows mounting)."""
    settings.data_dir.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(settings.data_dir)],
                           capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip() or mount.returncode}")
    yield settings.data_dir
    subprocess.run(["umount", "-l", str(settings.data_dir)], check=True)


def fill(path):
    """Write a file until the filesystem is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as f:  # the last bytes of the last page
        try:
            while True:
                f.write(b"x")
        except OSError:
            pass


def test_a_full_disk_answers_507_changes_nothing_and_recovers(small_disk, stack, api):
    assert api.post("/orders", BUY)[:2] == (200, {"data": {"transaction_number": 0}})
    fill(small_disk / "filler")
    for _ in range(3):
        status, body, _ = api.post("/orders", BUY)
        assert status == 507 and body["error"]["code"] == 507
        assert body["error"]["message"].startswith("insufficient storage")
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 99
    assert api.get("/orders/1")[0] == 404
    os.remove(small_disk / "filler")
    assert api.post("/orders", BUY)[:2] == (200, {"data": {"transaction_number": 1}})
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 98
    logs = stack.logs()
    assert logs.count("disk full") == 1 and logs.count("disk space is available again") == 1, logs

"""A fresh stack starts without a warning or an error, and its INFO lines say what each service does."""
import re
import time

import pytest

from client.session import Session
from harness.stack import Stack

NOISE = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")
REPLICAS = ("order-0", "order-1", "order-2")
CATALOGS = ("catalog-0", "catalog-1")


def wait_for_lines(path, *texts, timeout=20):
    deadline = time.monotonic() + timeout
    while not all(text in path.read_text() for text in texts):
        assert time.monotonic() < deadline, f"{path.name} does not say {texts}:\n{path.read_text()}"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_fresh_stack_starts_quietly_and_says_what_each_service_does(settings, tmp_path):
    with Stack(settings, log_dir=tmp_path, replicas=3, catalog_replicas=2) as stack:
        api = Session(stack.url)
        assert api.post("/orders", {"name": "GameStart", "quantity": 1, "type": "buy"})[0] == 200
        api.close()
        for name in (*REPLICAS, *CATALOGS):
            wait_for_lines(tmp_path / f"{name}.log", "reading the order stream", "caught up with the order stream")
        codes = stack.stop()
        assert set(codes.values()) == {0}
    logs = {path.stem: path.read_text() for path in tmp_path.glob("*.log")}
    noisy = [line for text in logs.values() for line in text.splitlines() if NOISE.search(line)]
    assert noisy == [], "\n".join(noisy)
    assert sum("leading: the next transaction number is" in logs[name] for name in REPLICAS) == 1
    assert "serving on http://" in logs["frontend"]
    assert all("serving " + settings.queue("catalog") in logs[name] for name in CATALOGS)

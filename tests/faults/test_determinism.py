"""Replicas decide every stream entry alike, whatever restarted: the idempotency window is the stream's."""
import time

import pytest
from test_faults import check_invariants, read_csv

from bench.failover import wait_identical
from client.session import Session
from harness.stack import Stack

WINDOW = 3.0
BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


@pytest.mark.slow
def test_a_key_retried_after_the_window_is_one_new_trade_on_every_replica(settings, tmp_path):
    stack = Stack(settings, env={"IDEMPOTENCY_WINDOW": str(WINDOW)}, log_dir=tmp_path, replicas=3)
    with stack:
        api = Session(stack.url)
        key = {"Idempotency-Key": "retried-late"}
        traded = time.monotonic()
        assert api.post("/orders", BUY, headers=key)[:2] == (200, {"data": {"transaction_number": 0}})
        # Inside the window, a follower and the catalog restart: they read the key back from their files.
        follower = next(name for name in stack.replicas if name != stack.leader())
        stack.stop(follower, "catalog")
        stack.start(follower, "catalog")
        time.sleep(max(0.0, traded + WINDOW + 0.5 - time.monotonic()))
        # After the window the key is forgotten: the retry is a new trade, on every replica alike.
        assert api.post("/orders", BUY, headers={"Idempotency-Key": "between"})[0] == 200
        assert api.post("/orders", BUY, headers=key)[:2] == (200, {"data": {"transaction_number": 2}})
        for n in range(3):
            assert api.post("/orders", BUY, headers={"Idempotency-Key": f"later-{n}"})[0] == 200
        api.close()
        # The catalog applies the same entries too: wait for it as well, or it may stop one behind.
        logs = [stack.replica_dir(name) / "order_log.csv" for name in [*stack.replicas, "catalog"]]
        identical, _, lines = wait_identical(logs, 10)
        assert identical, lines
        assert set(stack.stop().values()) == {0}
    rows = read_csv(settings, "order-0/order_log.csv")
    assert [row["trade_id"] for row in rows[:3]] == ["retried-late", "between", "retried-late"]
    # Two trades, two numbers, the same in every replica's log and stocks.
    check_invariants(settings, {}, replicas=("order-0", "catalog"), reused_keys=1)

"""How long another frontend serves the pre-trade quantity: ``python -m bench.convergence [--trades N]``.

Two frontends on one namespace; each trade goes through the first, and the second is polled from
the moment the trade's 200 arrives until it reports the new quantity. Prints p50/p99/max in ms.
"""
import argparse
import json
import time

from client.session import Session
from client.stats import percentile
from harness.stack import Stack


def converge_ms(trader, watcher, trades):
    """Per trade: ms from its 200 on ``trader`` until ``watcher`` reports the new quantity."""
    while watcher.get("/stocks/GameStart")[2]["X-Cache"] != "hit":  # its cache is up and warm
        time.sleep(0.01)
    delays, expected = [], watcher.get("/stocks/GameStart")[1]["data"]["quantity"]
    for n in range(trades):
        side = ("buy", "sell")[n % 2]
        expected += -1 if side == "buy" else 1
        status, _, _ = trader.post("/orders", {"name": "GameStart", "quantity": 1, "type": side})
        assert status == 200, status
        done = time.perf_counter()
        while watcher.get("/stocks/GameStart")[1]["data"]["quantity"] != expected:
            pass
        delays.append((time.perf_counter() - done) * 1000)
    return sorted(delays)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.convergence", description=__doc__)
    parser.add_argument("--trades", type=int, default=500)
    args = parser.parse_args(argv)
    with Stack() as stack, Stack(stack.settings, services=("frontend",), log_dir=stack.log_dir / "other") as other:
        delays = converge_ms(Session(stack.url), Session(other.url), args.trades)
    figures = {"trades": len(delays), **{f"p{q}": percentile(delays, q) for q in (50, 90, 99)}, "max": delays[-1]}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

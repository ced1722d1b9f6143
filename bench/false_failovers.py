"""False failovers under load: does a fully loaded machine make the order leader lose the queue?

``python -m bench.false_failovers --minutes 5 --connections 32`` starts a native stack with three
order replicas, trades with wrk on ``--connections`` keep-alive connections for ``--minutes``
(nothing is killed, frozen or cut), and counts the leader changes the replicas' logs show: with no
fault injected, every change of leader after the first is a false failover (a heartbeat the loaded
machine did not send or read in time, LEADER_HEARTBEAT). It prints one line of figures.
"""
import argparse
import re
import time

from bench.loads import wrk
from harness.stack import Stack

REPLICAS = 3


def leader_changes(stack):
    """How many times a replica started to lead, and the log lines of connections the broker dropped."""
    logs = [(stack.log_dir / f"{name}.log").read_text(errors="replace") for name in stack.replicas]
    leads = sum(text.count("leading:") for text in logs)
    dropped = [line for text in logs for line in text.splitlines()
               if re.search(r"lost connection to broker|stepped down|lost the order stream", line)]
    return leads, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.false_failovers", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    with Stack(replicas=REPLICAS, replica_env={"LOG_LEVEL": "INFO"}) as stack:
        started = time.monotonic()
        result = wrk(stack.url, "trade", args.connections, int(args.minutes * 60))["trade"]
        leads, dropped = leader_changes(stack)
    print(f"{args.minutes:g} min of trades on {args.connections} connections, 3 replicas: "
          f"{result['count']} trades ({result['rate']:.0f}/s, p99 {result['p99']:.1f} ms, errors {result['errors']}); "
          f"leaders {leads}, false failovers {max(0, leads - 1)}; {time.monotonic() - started:.0f} s")
    for line in dropped:
        print("  ", line[:200])


if __name__ == "__main__":
    main()

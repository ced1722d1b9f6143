"""Failure study: trade latency over time while the leading order replica is SIGKILLed and restarted.

``python -m bench.failover`` starts a native stack with three order worker replicas, runs trading
sessions (each trade with an Idempotency-Key, sent again with the same key after a 503, a 504 or a
lost connection), kills the leader (the order queue's single active consumer) ``--kills`` times at
even intervals, starting it again at once on its own data directory, and after the load checks that
the replicas' order logs become byte-identical. It writes docs/img/failover-native.png,
bench/results/failover.json and the ``failover`` block of docs/evaluation.md.
"""
import argparse
import http.client
import itertools
import json
import random
import sys
import time
import uuid
from collections import Counter

from matplotlib.figure import Figure

from bench.evaluate import IMAGES, update_report
from bench.loads import ClientThreads
from client.session import Session
from client.stats import percentile
from client.trader import DEFAULT_STOCKS
from harness.stack import ROOT, Stack

REPLICAS = 3
RETRYABLE = (503, 504, "transport")  # answers after which the same request may be sent again
RESULTS = ROOT / "bench" / "results" / "failover.json"


def longest_pause(successes):
    """The longest time between two successive successful trades (times in seconds)."""
    return max((later - earlier for earlier, later in itertools.pairwise(sorted(successes))), default=float("inf"))


def gaps(successes, killed_at):
    """For each kill, the time from the last successful trade before it to the first one after it."""
    successes = sorted(successes)
    return [min((t for t in successes if t > kill), default=float("inf")) -
            max((t for t in successes if t < kill), default=kill) for kill in killed_at]


class Sessions(ClientThreads):
    """Client threads trading until stopped; each records every trade it placed (times from ``t0``)."""

    def __init__(self, url, sessions, seed, t0, retries=20, pause=0.05):
        super().__init__([random.Random(seed + i) for i in range(sessions)])
        self.url, self.t0, self.retries, self.pause = url, t0, retries, pause
        self.requests = []  # {"start", "end", "latency", "status", "retries", "statuses"} per trade, in s

    def _trade(self, rng):
        session = Session(self.url, timeout=10)
        while not self.done.is_set():
            # A buy, then a sell of the same shares, so no stock runs out.
            order = {"name": rng.choice(DEFAULT_STOCKS), "quantity": rng.randint(1, 5)}
            for side in ("buy", "sell"):
                self.requests.append(self._place(session, {**order, "type": side}))
        session.close()

    def _place(self, session, order):
        """One trade, sent again with the same key while its answer says it may be."""
        key, statuses = {"Idempotency-Key": uuid.uuid4().hex}, []
        start = time.monotonic()
        for _ in range(self.retries):
            try:
                status = session.post("/orders", order, headers=key)[0]
            except (OSError, http.client.HTTPException):
                session.close()
                status = "transport"
            statuses.append(status)
            if status not in RETRYABLE:
                break
            time.sleep(self.pause)
        end = time.monotonic()
        return {"start": start - self.t0, "end": end - self.t0, "latency": end - start, "status": status,
                "retries": len(statuses) - 1, "statuses": statuses}


def kill_leaders(stack, kills, seconds, t0):
    """SIGKILL the leader ``kills`` times at even intervals over ``seconds``, restarting it at once."""
    events = []
    for n in range(kills):
        time.sleep(max(0.0, t0 + seconds * (n + 1) / (kills + 1) - time.monotonic()))
        name = stack.leader()
        killed = time.monotonic()
        stack.kill(name)
        stack.restart(name)
        events.append({"replica": name, "killed": killed - t0, "restarted": time.monotonic() - t0})
        print(f"{killed - t0:6.1f} s: killed {name}", file=sys.stderr)
    return events


def wait_identical(paths, timeout):
    """Poll until the files at ``paths`` hold the same bytes (a missing one counts as empty: a replica
    restarted on an empty directory may not have made its log yet); return (identical, seconds, lines)."""
    started = time.monotonic()
    while True:
        contents = {path.read_bytes() if path.exists() else b"" for path in paths}
        if len(contents) == 1 or time.monotonic() - started > timeout:
            return len(contents) == 1, time.monotonic() - started, [c.count(b"\n") for c in contents]
        time.sleep(0.2)


def figures(requests, kills, identical, quiesced_s, log_lines):
    """The study's results: what clients saw around each kill and the replica file check."""
    ok = [r for r in requests if r["status"] == 200]
    for kill in kills:
        kill["gap_s"] = gaps([r["end"] for r in ok], [kill["killed"]])[0]
    latencies = sorted(r["latency"] * 1000 for r in requests)
    return {
        "trades": len(requests),
        "succeeded": len(ok),
        "needed_retry": sum(r["retries"] > 0 for r in requests),
        "failed": [r for r in requests if r["status"] != 200],
        "answers": dict(Counter(str(s) for r in requests for s in r["statuses"])),
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                       "max": latencies[-1] if latencies else None},
        "kills": kills,
        "longest_gap_s": max(kill["gap_s"] for kill in kills) if kills else None,
        "replicas_identical": identical,
        "identical_after_s": quiesced_s,
        "order_log_lines": log_lines,
    }


def plot(requests, kills, path):
    """Each trade's latency at the time it started, retried ones apart, with the kills marked (Agg PNG)."""
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    groups = (("no retry", lambda r: r["status"] == 200 and not r["retries"], "C0", "."),
              ("after a retry", lambda r: r["status"] == 200 and r["retries"], "C1", "o"),
              ("failed", lambda r: r["status"] != 200, "C3", "x"))
    for label, chosen, color, marker in groups:
        points = [(r["start"], r["latency"] * 1000) for r in requests if chosen(r)]
        if points:
            ax.scatter(*zip(*points, strict=False), s=6 if marker == "." else 24, color=color, marker=marker,
                       label=f"{label} ({len(points)})")
    for n, kill in enumerate(kills):
        ax.axvline(kill["killed"], color="C3", linestyle="--", linewidth=1,
                   label="leader SIGKILLed" if n == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("trade latency, retries included (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"Trades while the leading order replica is killed ({REPLICAS} replicas)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def report(result, args):
    """The generated part of docs/evaluation.md."""
    gaps_s = ", ".join(f"{kill['gap_s']:.2f}" for kill in result["kills"])
    latency = result["latency_ms"]
    return "\n".join([
        f"{args.sessions} sessions for {args.seconds:g} s, {len(result['kills'])} leader kills; reproduce with "
        f"`python -m bench.failover --seconds {args.seconds:g} --kills {args.kills} --sessions {args.sessions}`.",
        "",
        "![failover-native](img/failover-native.png)",
        "",
        "| trades | succeeded | needed a retry | failed | answers | latency p50 / p99 / max ms "
        "| gap around each kill (s) | replicas' order logs |",
        "|--:|--:|--:|--:|---|---|---|---|",
        f"| {result['trades']} | {result['succeeded']} | {result['needed_retry']} | {len(result['failed'])} "
        f"| {' '.join(f'{k}:{v}' for k, v in sorted(result['answers'].items()))} "
        f"| {latency['p50']:.2f} / {latency['p99']:.2f} / {latency['max']:.0f} | {gaps_s} "
        f"| {'identical' if result['replicas_identical'] else 'DIFFERENT'} "
        f"({', '.join(map(str, result['order_log_lines']))} lines, "
        f"{result['identical_after_s']:.1f} s after the load) |",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of the client run (default 30)")
    parser.add_argument("--kills", type=int, default=5, help="leader kills during the run (default 5)")
    parser.add_argument("--sessions", type=int, default=4, help="concurrent trading sessions (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with Stack(replicas=REPLICAS) as stack:
        url = stack.url
        t0 = time.monotonic()
        with Sessions(url, args.sessions, args.seed, t0) as load:
            kills = kill_leaders(stack, args.kills, args.seconds, t0)
            time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        logs = [stack.replica_dir(f"order-{r}") / "order_log.csv" for r in range(REPLICAS)]
        identical, quiesced_s, lines = wait_identical(logs, timeout=30)
    result = figures(load.requests, kills, identical, quiesced_s, lines)
    RESULTS.write_text(json.dumps({"args": vars(args), **result}, indent=2))
    IMAGES.mkdir(parents=True, exist_ok=True)
    plot(load.requests, kills, IMAGES / "failover-native.png")
    update_report("failover", report(result, args))
    print(json.dumps({k: v for k, v in result.items() if k != "failed"}, indent=2))
    return 0 if identical and not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())

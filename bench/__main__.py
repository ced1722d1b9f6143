"""Benchmark the floors and the full stack side by side: ``python -m bench [--quick]``."""
import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import uuid
from pathlib import Path

from bench import cpu, floor_rpc, loads
from bench.machine import describe
from harness.stack import Stack
from runtime.settings import Settings

CONNECTIONS = (1, 8, 32, 64)
TRADES_ONLY = 32  # from this many connections only the wrk trade load runs
FIGURES = ("rate", "mean", "p50", "p90", "p99", "max")
REPLICATED = "stack x3"  # three order replicas and two catalog replicas: every stateful service replicated
UNBATCHED = f"{REPLICATED}, ORDER_BATCH=1"  # the same, one stream entry per trade


def median_summary(summaries):
    """Median of each figure across runs; counts and errors added up."""
    errors = {}
    for summary in summaries:
        for kind, n in summary["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    return {"count": sum(s["count"] for s in summaries), "errors": errors,
            **{key: statistics.median(s[key] for s in summaries) for key in FIGURES}}


def measure(load, args, pids=None):
    """Warm up with ``load(seconds)``, then run it ``args.runs`` times; return ``{workload: median summary}``.

    With ``pids`` (``{name: pid}``) a single-workload summary also gets ``cpu_ms`` and ``switches``:
    each process's CPU time and context switches per request over the measured runs."""
    load(args.warmup)
    before = cpu.snapshot(pids or {})
    runs = [load(args.duration) for _ in range(args.runs)]
    return summarize(runs, [(before, cpu.snapshot(pids))] if pids else [])


def summarize(runs, snapshots):
    """``{workload: median summary}`` of the runs of one load. A single workload's summary gets
    ``cpu_ms`` and ``switches`` if there are ``(before, after)`` snapshots (``cpu.snapshot``): its
    processes' CPU time and context switches in them, per request."""
    summaries = {workload: median_summary([run[workload] for run in runs]) for workload in runs[0]}
    if len(summaries) == 1 and snapshots:
        (summary,) = summaries.values()
        summary["cpu_ms"], summary["switches"] = cpu.per_request(snapshots, summary["count"])
    return summaries


def measure_all(system, loads_for, args, pids=None):
    """Rows for each load at each connection count; ``loads_for(connections)`` lists the loads."""
    rows = []
    for connections in CONNECTIONS:
        for load in loads_for(connections):
            for workload, summary in measure(load, args, pids).items():
                rows.append(row(system, workload, connections, summary))
    return rows


def measure_side_by_side(systems, args):
    """Rows for each load of each ``(system, loads_for, pids)`` at each connection count, measured in
    ``args.runs`` rounds: a round runs every load once (after its warm-up), connection count by
    connection count, the systems in turn, in reverse order every other round. This machine's speed
    drifts by 1.5x within minutes, so floors measured minutes before the stack made its ratios a
    measure of the drift too; side by side, a drift falls on the floors and the stack alike."""
    results = {}  # (system, connections, load number) -> ([runs], [(before, after) CPU snapshots])
    for run in range(args.runs):
        for connections in CONNECTIONS:
            for system, loads_for, pids in systems if run % 2 == 0 else systems[::-1]:
                for number, load in enumerate(loads_for(connections)):
                    load(args.warmup)
                    before = cpu.snapshot(pids)
                    outcome = load(args.duration)
                    runs, snapshots = results.setdefault((system, connections, number), ([], []))
                    runs.append(outcome)
                    snapshots.append((before, cpu.snapshot(pids)))
    names = [system for system, _, _ in systems]
    by_system = sorted(results.items(), key=lambda result: names.index(result[0][0]))  # stable: by connections next
    return [row(system, workload, connections, summary)
            for (system, connections, _), (runs, snapshots) in by_system
            for workload, summary in summarize(runs, snapshots).items()]


def row(system, workload, connections, summary):
    """One row of the table (and printed as it comes, to follow a long run)."""
    print(f"{system} {workload} x {connections}: {summary['rate']:.0f} req/s, p50 {summary['p50']:.2f} ms",
          file=sys.stderr)
    return {"system": system, "workload": workload, "connections": connections, **summary}


def http_loads(url, connections):
    """The HTTP loads: wrk lookups, wrk trades and the mixed client; from ``TRADES_ONLY`` connections wrk trades."""
    if connections >= TRADES_ONLY:
        return [functools.partial(loads.wrk, url, "trade", connections)]
    return [functools.partial(loads.wrk, url, "lookup", connections),
            functools.partial(loads.wrk, url, "trade", connections),
            functools.partial(loads.mixed, url, connections)]


def run_all(args):
    """Every row of the benchmark: the HTTP floor, the RPC floor and the replicated stack side by side
    (the targets are ratios of them), then the stack with one replica each, with and without its
    cache, and the replicated stack unbatched."""
    settings = dataclasses.replace(Settings.from_env(), namespace=f"bench-{uuid.uuid4().hex[:8]}")
    with Stack(services=("frontend",), modules={"frontend": "bench.floor_http"}) as http_floor, \
            floor_rpc.echo_server(settings) as server, Stack(replicas=3, catalog_replicas=2) as replicated:
        rows = measure_side_by_side([
            ("http floor", functools.partial(http_loads, http_floor.url), cpu.stack_pids(http_floor)),
            ("rpc floor", lambda c: [functools.partial(floor_rpc.measure, settings, c)] if c < TRADES_ONLY else [],
             cpu.echo_pids(server)),
            (REPLICATED, functools.partial(http_loads, replicated.url), cpu.stack_pids(replicated))], args)
    with Stack() as stack:
        rows += measure_all("stack", functools.partial(http_loads, stack.url), args, cpu.stack_pids(stack))
    with Stack(env={"CACHE_SIZE": "0"}) as stack:
        rows += measure_all("stack, CACHE_SIZE=0", functools.partial(http_loads, stack.url), args)
    with Stack(replicas=3, catalog_replicas=2, env={"ORDER_BATCH": "1"}) as stack:
        rows += measure_all(UNBATCHED, lambda c: [functools.partial(loads.wrk, stack.url, "trade", c)], args,
                            cpu.stack_pids(stack))
    floors = {(r["workload"], r["connections"]): r for r in rows if r["system"] in ("http floor", "rpc floor")}
    for r in rows:
        if r["system"] not in ("http floor", "rpc floor"):
            floor = floors[r["workload"], r["connections"]]
            r["rate_vs_floor"] = r["rate"] / floor["rate"]
            r["p50_vs_floor"] = r["p50"] / floor["p50"]
    return rows


def markdown(rows):
    """The rows as a markdown table."""
    lines = ["| system | workload | conns | req/s | p50 ms | p90 ms | p99 ms | errors | req/s ÷ floor | p50 ÷ floor |",
             "|---|---|--:|--:|--:|--:|--:|---|--:|--:|"]
    for r in rows:
        errors = " ".join(f"{kind}:{n}" for kind, n in r["errors"].items()) or "0"
        ratios = f"{r['rate_vs_floor']:.2f} | {r['p50_vs_floor']:.2f}" if "rate_vs_floor" in r else "|"
        lines.append(f"| {r['system']} | {r['workload']} | {r['connections']} | {r['rate']:.0f} | {r['p50']:.2f} "
                     f"| {r['p90']:.2f} | {r['p99']:.2f} | {errors} | {ratios} |")
    return "\n".join(lines)


def cpu_lines(rows):
    """One line per trade or echo row measured with CPU times: each process's CPU ms and context
    switches per request (``load``: wrk, or the echo clients)."""
    lines = []
    for r in rows:
        if r["workload"] in ("trade", "echo") and r.get("cpu_ms"):
            shares = ", ".join(f"{name} {ms:.2f}" for name, ms in r["cpu_ms"].items())
            switches = ", ".join(f"{name} {n:.1f}" for name, n in r.get("switches", {}).items())
            lines.append(f"- {r['system']} x {r['connections']}: {sum(r['cpu_ms'].values()):.2f} ms ({shares}); "
                         f"{sum(r.get('switches', {}).values()):.0f} context switches ({switches})")
    return lines


def targets(rows):
    """The issue 16 targets for the replicated stack, each against the floors of the same run:
    ``[(what, measured, limit, met)]``."""
    row = {(r["system"], r["workload"], r["connections"]): r for r in rows}
    rpc1, http1 = row["rpc floor", "echo", 1], row["http floor", "trade", 1]
    trade = {c: row[REPLICATED, "trade", c] for c in (1, 8, 32)}
    p50_limit = http1["p50"] + 3 * rpc1["p50"] + 0.5
    found = [("trade x 8 req/s >= 0.7 x rpc floor x 1", trade[8]["rate"], 0.7 * rpc1["rate"], True),
             ("trade x 32 req/s >= 1.0 x rpc floor x 1", trade[32]["rate"], rpc1["rate"], True),
             ("trade x 1 p50 ms <= http floor p50 + 3 x rpc floor p50 + 0.5", trade[1]["p50"], p50_limit, False)]
    found += [(f"trade x {c} p99 ms <= 3 x p50", trade[c]["p99"], 3 * trade[c]["p50"], False) for c in trade]
    found += [(f"cached lookup x {c} req/s >= 0.8 x http floor", row[REPLICATED, "lookup", c]["rate"],
               0.8 * row["http floor", "lookup", c]["rate"], True) for c in (1, 8)]
    return [(what, value, limit, value >= limit if at_least else value <= limit)
            for what, value, limit, at_least in found]


def budget(rows, connections=8, cores=None):
    """The most trades/s the machine's cores allow a design that makes one HTTP request and one RPC
    per trade: the CPU of an HTTP floor trade (its server and wrk) and of an RPC floor round trip
    (echo server, clients, RabbitMQ) at ``connections``, from the same run. ``(ms, trades/s)``."""
    row = {(r["system"], r["workload"], r["connections"]): r for r in rows}
    parts = [row["http floor", "trade", connections], row["rpc floor", "echo", connections]]
    ms = sum(sum(part.get("cpu_ms", {}).values()) for part in parts)
    return ms, (cores or os.cpu_count() or 1) * 1000 / ms if ms else 0.0


def target_lines(rows):
    """One line per target: the measured figure, its limit, and whether it is met."""
    return [f"- {what}: {value:.2f} (limit {limit:.2f}): {'met' if met else 'MISSED'}"
            for what, value, limit, met in targets(rows)]


def run_parser(prog, description, per="load"):
    """An argument parser with the run options every benchmark shares (--runs, --duration, --warmup, --quick)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--runs", type=int, default=3, help=f"measured runs per {per} (default %(default)s)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help=f"seconds of warm-up per {per} (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s after 1 s of warm-up")
    return parser


def parse_runs(parser, argv):
    """The parsed ``argv``; --quick makes it one short run."""
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 3, 1
    return args


def parse_args(argv):
    parser = run_parser("python -m bench", __doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "latest.json")
    return parse_runs(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    rows = run_all(args)
    report = {"machine": describe(), "runs": args.runs, "duration_s": args.duration,
              "warmup_s": args.warmup, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(rows))
    print("\n".join(["", "CPU ms and context switches per trade (from /proc: utime+stime, every thread's switches):",
                      *cpu_lines(rows)]))
    ms, rate = budget(rows)
    print("\n".join(["", "Targets:", *target_lines(rows),
                      f"- for scale: one HTTP floor trade and one RPC floor round trip at 8 connections take "
                      f"{ms:.2f} ms of CPU, so one RPC per trade allows at most {rate:.0f} trades/s here"]))


if __name__ == "__main__":
    main()

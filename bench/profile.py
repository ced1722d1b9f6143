"""Sample a replicated trade's processes with py-spy under load: ``python -m bench.profile [--connections C]``.

Starts a stack with three order replicas, drives trades with wrk and records the frontend, the leading
order replica and the catalog with ``py-spy record`` (raw format, thread names kept) for the length of
the run. Prints, per process, the share of samples per thread, the leaf frames (where the code is)
and ms per trade of the functions on the stack (inclusive, summed over threads). With ``--gil`` (the
default) only samples holding the GIL count: samples ÷ (rate x seconds) is the share of the run the
process held its GIL, and the functions are the project's own, as CPU per trade. With ``--idle``
waiting threads count too, and the functions are TRADE_PATH, as wall time per trade: a handler thread
serves one trade at a time, so that is where a trade waited. The raw files stay in ``--out``.
"""
import argparse
import collections
import subprocess
import sys
import threading
from pathlib import Path

from bench.loads import wrk
from harness.stack import Stack

RATE = 100  # py-spy samples per second
OWN = ("broker/", "ledger/", "order_worker/", "catalog_worker/", "frontend/", "storage/", "trading/", "runtime/")
# A trade's way through the services: with --idle each one's wall time per trade is printed.
TRADE_PATH = ("Flask.wsgi_app", "RpcClient.call", "RpcServer._handle", "_Link.call", "ReplicatedLog._wait",
              "ReplicatedLog._on_entry", "AppendLog._fdatasync")
PY_SPY = Path(sys.executable).with_name("py-spy")  # installed in the venv beside this Python


def name_of(frame):
    """A trade path function by its name, another of the project's own as ``name (file)``, else None."""
    name, _, place = frame.partition(" (")
    if name in TRADE_PATH:
        return name
    return f"{name} ({place.rpartition(':')[0]})" if place.startswith(OWN) else None


def shares(raw_text, top):
    """``(samples, {thread: samples}, [(leaf frame, samples)], [(own function, samples)])`` from a
    py-spy raw file (``thread (id): name;frame;...;leaf count`` lines, outermost frame first); an own
    function (``name (file)``, line dropped) counts once per sample that has it anywhere on its stack."""
    threads, leaves, own = collections.Counter(), collections.Counter(), collections.Counter()
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        threads[thread.split(": ", 1)[-1]] += int(count)
        leaves[frames[-1] if frames else thread] += int(count)
        for function in {name_of(frame) for frame in frames} - {None}:  # once per sample
            own[function] += int(count)
    return sum(threads.values()), dict(threads.most_common()), leaves.most_common(top), own


def record(pid, seconds, path, gil):
    """Run py-spy on ``pid`` for ``seconds``, writing raw stacks to ``path``."""
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw",
               "--rate", str(RATE), "--threads", "--nonblocking", "-o", str(path), "--gil" if gil else "--idle"]
    subprocess.run(command, check=True, capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=8, help="leaf frames shown per process (default 8)")
    parser.add_argument("--idle", dest="gil", action="store_false", help="count waiting threads too")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bazaar-profile"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with Stack(replicas=3) as stack:
        wrk(stack.url, "trade", args.connections, 2)  # warm-up
        targets = {"frontend": "frontend", "leader": stack.leader(), "catalog": "catalog"}
        recorders = [threading.Thread(target=record, args=(stack.processes[name].pid, args.seconds,
                                                           args.out / f"{role}.txt", args.gil))
                     for role, name in targets.items()]
        for recorder in recorders:
            recorder.start()
        result = wrk(stack.url, "trade", args.connections, args.seconds)["trade"]
        for recorder in recorders:
            recorder.join()
    print(f"trade x {args.connections} under py-spy: {result['rate']:.0f} req/s, p50 {result['p50']:.2f} ms")
    for role in targets:
        total, by_thread, by_leaf, by_own = shares((args.out / f"{role}.txt").read_text(), args.top)
        held = f", GIL held {total / (RATE * args.seconds):.0%} of the run" if args.gil else ""
        print(f"\n{role} ({total} samples{held})")
        print("  threads: " + ", ".join(f"{name} {n / total:.0%}" for name, n in by_thread.items() if n >= total / 100))
        print("  leaf frames, share of samples:")
        for frame, n in by_leaf:
            print(f"  {n / total:6.1%}  {frame}")
        # A thread sampled S times stood for the whole run: n samples of a function are n / S of it.
        per_thread = RATE * args.seconds if args.gil else max(by_thread.values(), default=1)
        shown = ([(f, by_own[f]) for f in TRADE_PATH if f in by_own] if not args.gil else
                 by_own.most_common(args.top))
        print(f"  {'trade path' if not args.gil else 'own functions'} on the stack (inclusive), "
              f"ms per trade summed over threads:")
        for function, n in shown:
            print(f"  {n / per_thread * args.seconds * 1000 / result['count']:7.2f}  {function}")


if __name__ == "__main__":
    main()

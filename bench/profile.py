"""Sample a replicated trade's processes with py-spy under load: ``python -m bench.profile [--connections C]``.

Starts a stack with three order replicas, drives trades with wrk and records the frontend, the leading
order replica and the catalog with ``py-spy record`` (raw format, thread names kept) for the length of
the run. Prints, per process, the share of samples per thread and the leaf frames (where the code is)
and the project's own frames that were on the stack most (inclusive). With ``--gil`` (the default)
only the samples holding the GIL count, so samples ÷ (rate x seconds) is the share of the run the
process held its GIL; ``--idle`` counts waiting threads too. The raw files stay in ``--out``.
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
OWN = ("broker/", "order_worker/", "catalog_worker/", "frontend/", "storage/", "trading/", "runtime/")
PY_SPY = Path(sys.executable).with_name("py-spy")  # installed in the venv beside this Python


def shares(raw_text, top):
    """``(samples, {thread: share}, [(leaf frame, share)], [(own frame, inclusive share)])`` from a
    py-spy raw file (``thread;frame;...;leaf count`` lines, outermost frame first)."""
    threads, leaves, own = collections.Counter(), collections.Counter(), collections.Counter()
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        threads[thread.split(": ", 1)[-1]] += int(count)
        leaves[frames[-1] if frames else thread] += int(count)
        for frame in {f for f in frames if f.partition("(")[2].startswith(OWN)}:  # once per sample
            own[frame] += int(count)
    total = sum(threads.values()) or 1
    return (sum(threads.values()), {name: n / total for name, n in threads.most_common()},
            [(frame, n / total) for frame, n in leaves.most_common(top)],
            [(frame, n / total) for frame, n in own.most_common(top)])


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
        print("  threads: " + ", ".join(f"{name} {share:.0%}" for name, share in by_thread.items() if share >= 0.01))
        print("  leaf frames:")
        for frame, share in by_leaf:
            print(f"  {share:6.1%}  {frame}")
        print("  own frames, inclusive:")
        for frame, share in by_own:
            print(f"  {share:6.1%}  {frame}")


if __name__ == "__main__":
    main()

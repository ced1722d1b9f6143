"""Trading client: N sessions of lookups and trades against the frontend, with latency per request type."""
import argparse
import functools
import json
import multiprocessing
import random
import sys
import time
from typing import Any

from client.stats import aggregate, format_table
from client.trader import DEFAULT_STOCKS, play

_counter: Any = None  # loops done, shared by the session processes (a multiprocessing.Value)


def _init(counter):
    global _counter
    _counter = counter


def _tick():
    with _counter.get_lock():
        _counter.value += 1


def _session(seed, **options):
    return play(seed, tick=_tick, **options)


def draw_progress(fraction):
    """Draw a one-line progress bar on stderr."""
    filled = int(30 * min(fraction, 1.0))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {min(fraction, 1.0):4.0%}")
    sys.stderr.flush()


def fraction_done(args, loops_done, elapsed):
    """How far the sessions are, from the loops done so far or the time elapsed."""
    if args.duration:
        return elapsed / args.duration
    return loops_done / (args.iterations * args.clients)


def run(args):
    """Run the sessions; return ``(summary per request type, mismatches, elapsed seconds)``."""
    seed = random.randrange(2**32) if args.seed is None else args.seed
    options = {"url": args.url, "probability": args.probability, "stocks": args.stocks,
               "iterations": args.iterations, "duration": args.duration}
    counter = multiprocessing.Value("q", 0)
    show = sys.stderr.isatty()
    start = time.monotonic()
    with multiprocessing.Pool(args.clients, initializer=_init, initargs=(counter,)) as pool:
        pending = pool.map_async(functools.partial(_session, **options), [seed + i for i in range(args.clients)])
        while not pending.ready():
            if show:
                draw_progress(fraction_done(args, counter.value, time.monotonic() - start))
            pending.wait(0.2)
        results = pending.get()
    if show:
        draw_progress(1.0)
        sys.stderr.write("\n")
    mismatches = [problem for _, problems in results for problem in problems]
    return aggregate([records for records, _ in results]), mismatches, time.monotonic() - start


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="frontend base URL")
    parser.add_argument("-p", "--probability", type=float, default=0.5, help="chance of a trade after a lookup")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, help="lookups per session (default 100)")
    length.add_argument("--duration", type=float, help="seconds per session instead of a number of lookups")
    parser.add_argument("--seed", type=int, help="random seed of the first session (session i uses seed + i)")
    parser.add_argument("--clients", type=int, default=1, help="number of concurrent sessions (processes)")
    parser.add_argument("--stocks", type=lambda s: tuple(s.split(",")), default=DEFAULT_STOCKS,
                        help="comma-separated stock names to trade")
    parser.add_argument("--json", metavar="FILE", help="also write the summary to FILE as JSON")
    args = parser.parse_args(argv)
    if args.duration is None and args.iterations is None:
        args.iterations = 100
    return args


def main(argv=None):
    """Run the client; exit status 1 when an order read back differs from what was placed."""
    args = parse_args(argv)
    summary, mismatches, elapsed = run(args)
    print(format_table(summary))
    for problem in mismatches:
        print(f"MISMATCH {problem}", file=sys.stderr)
    if args.json:
        report = {"clients": args.clients, "probability": args.probability, "elapsed_s": elapsed,
                  "requests": summary, "mismatches": mismatches}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

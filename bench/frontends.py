"""Throughput with one and with two frontends in front of the same workers.

``python -m bench.frontends [--seconds 10] [--connections 8]``: for each frontend count, wrk drives
lookups and trades with the connections split evenly across the frontends; prints the summed rates.
"""
import argparse
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

from bench import loads
from harness.stack import Stack


def rates(frontends, connections, seconds):
    """``{mode: requests per second}`` over ``frontends`` frontends sharing one namespace and workers."""
    with Stack() as first, contextlib.ExitStack() as more:
        urls = [first.url] + [more.enter_context(Stack(first.settings, services=("frontend",),
                                                       log_dir=first.log_dir / f"frontend-{n}")).url
                              for n in range(frontends - 1)]
        result = {}
        for mode in ("lookup", "trade"):
            with ThreadPoolExecutor(len(urls)) as pool:
                runs = pool.map(lambda u, mode=mode: loads.wrk(u, mode, connections // len(urls), seconds), urls)
                result[mode] = round(sum(run[mode]["rate"] for run in runs), 1)
        return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.frontends", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8, help="in all, split across the frontends")
    args = parser.parse_args(argv)
    print(json.dumps({f"{n} frontend(s)": rates(n, args.connections, args.seconds) for n in (1, 2)}))


if __name__ == "__main__":
    main()

"""Throughput with one and with two frontends in front of the same workers.

``python -m bench.frontends [--seconds 10] [--connections 8]``: for each frontend count, wrk drives
lookups and trades with the connections split evenly across the frontends; prints the summed rates.
"""
import argparse
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

from bench import loads
from harness.stack import NativeStack


def rates(frontends, connections, seconds):
    """``{mode: requests per second}`` over ``frontends`` frontends sharing one namespace and workers."""
    first = NativeStack()
    with first as url, contextlib.ExitStack() as more:
        shared = {"BAZAAR_NAMESPACE": first.env["BAZAAR_NAMESPACE"], "DATA_DIR": first.data_dir}
        urls = [url] + [more.enter_context(NativeStack(shared, modules=("frontend",)))
                        for _ in range(frontends - 1)]
        result = {}
        for mode in ("lookup", "trade"):
            with ThreadPoolExecutor(len(urls)) as pool:
                runs = pool.map(lambda u: loads.wrk(u, mode, connections // len(urls), seconds), urls)
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

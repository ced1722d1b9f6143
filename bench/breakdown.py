"""Where a request's time goes: ``python -m bench.breakdown [trade|lookup] [--replicas N] [--catalogs N]
[--connections C]``.

Runs a stack whose workers serve their Prometheus metrics, drives it with wrk, and prints the mean of
every duration histogram (HTTP requests, RPC calls and handling by service and method, fsyncs) over
the run, read from each process's own metrics before and after it. A nested figure is part of the one
that contains it: a trade's frontend→order call includes the order worker's handling, which includes
its catalog call, which includes the catalog's handling, which includes its fsync.
"""
import argparse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from bench.loads import wrk
from harness.stack import Stack


def durations(url):
    """``{(histogram, labels): (count, sum)}`` of every ``bazaar_*_seconds`` histogram at ``url``."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram" or not family.name.startswith("bazaar_"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_count", "_sum")):
                key = (family.name, tuple(sorted(sample.labels.items())))
                count, total = found.get(key, (0, 0.0))
                found[key] = (sample.value, total) if sample.name.endswith("_count") else (count, sample.value)
    return found


def mean_ms(before, after):
    """``{key: (count, mean ms)}`` of what happened between two ``durations`` readings."""
    means = {}
    for key, (count, total) in after.items():
        count_before, total_before = before.get(key, (0, 0.0))
        if count > count_before:
            means[key] = (count - count_before, (total - total_before) / (count - count_before) * 1000)
    return means


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", choices=("trade", "lookup"), default="trade")
    parser.add_argument("--replicas", type=int, default=1, help="order worker replicas (default 1)")
    parser.add_argument("--catalogs", type=int, default=1, help="catalog replicas (default 1)")
    parser.add_argument("--connections", type=int, default=1, help="wrk connections (default 1)")
    parser.add_argument("--seconds", type=int, default=6, help="length of the measured run (default 6)")
    args = parser.parse_args(argv)
    with Stack(replicas=args.replicas, catalog_replicas=args.catalogs) as stack:
        url = stack.url
        sources = {"frontend": f"{url}/metrics", **stack.metrics_urls}
        wrk(url, args.workload, args.connections, 2)  # warm-up
        before = {name: durations(source) for name, source in sources.items()}
        result = wrk(url, args.workload, args.connections, args.seconds)[args.workload]
        after = {name: durations(source) for name, source in sources.items()}
    print(f"{args.workload} x {args.connections}, {args.replicas} order replica(s): {result['rate']:.0f} req/s, "
          f"p50 {result['p50']:.2f} ms, mean {result['mean']:.2f} ms")
    for name in sources:
        for (histogram, labels), (count, mean) in sorted(mean_ms(before[name], after[name]).items()):
            shown = ",".join(f"{key}={value}" for key, value in labels)
            print(f"  {name:16} {histogram.removeprefix('bazaar_')}{{{shown}}}: {count:.0f} x {mean:.3f} ms")


if __name__ == "__main__":
    main()

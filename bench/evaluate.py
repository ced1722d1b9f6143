"""Evaluation sweep: client latency per request type against p and the number of clients.

``python -m bench.evaluate`` runs ``python -m client --clients N -p P --json`` for p in 0..0.8 and N in 1..5,
each point on a fresh native stack, then writes the PNG plots to docs/img/ and the result tables into
docs/evaluation.md. ``--url URL --label docker`` measures an already running stack (e.g. the compose one).
A native run also sweeps p with the frontend's cache on, off and small (CACHE_SIZE below the number of
stocks, so LRU replacement is at work) at one client, plotting latency and the lookups' hit ratio into
the ``cache-native`` block. ``--only clients`` or ``--only cache`` runs one of the two sweeps.
"""
import argparse
import contextlib
import datetime
import json
import subprocess
import sys
import tempfile

from matplotlib.figure import Figure

from bench.machine import describe
from client.stats import KINDS
from harness.stack import ROOT, Stack

PROBABILITIES = (0.0, 0.2, 0.4, 0.6, 0.8)
CLIENTS = (1, 2, 3, 4, 5)
CACHES = {"on": {}, "off": {"CACHE_SIZE": "0"}, "small": {"CACHE_SIZE": "4"}}  # 10 stocks
REPORT = ROOT / "docs" / "evaluation.md"
IMAGES = ROOT / "docs" / "img"


def run_client(url, clients, probability, iterations, seed):
    """One client run; its ``requests`` summary per request type."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "client", "--url", url, "--clients", str(clients),
                        "-p", str(probability), "--iterations", str(iterations), "--seed", str(seed),
                        "--json", out.name], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        return json.load(out)["requests"]


@contextlib.contextmanager
def stack_url(env=None):
    """The URL of a fresh stack, for the block."""
    with Stack(env=env) as stack:
        yield stack.url


def sweep(args):
    """Every (p, clients) point, each on a fresh native stack unless ``--url`` names a running one."""
    points = []
    for probability in PROBABILITIES:
        for clients in CLIENTS:
            with contextlib.nullcontext(args.url) if args.url else stack_url() as url:
                requests = run_client(url, clients, probability, args.iterations, args.seed)
            points.append({"probability": probability, "clients": clients, "requests": requests})
            print(f"p={probability} clients={clients}: lookup p50 {requests['lookup']['p50']:.2f} ms",
                  file=sys.stderr)
    return points


def cache_sweep(args):
    """Every (p, cache) point at one client, each on a fresh native stack."""
    points = []
    for probability in PROBABILITIES:
        for cache, env in CACHES.items():
            with stack_url(env) as url:
                requests = run_client(url, 1, probability, args.iterations, args.seed)
            points.append({"probability": probability, "cache": cache, "requests": requests})
            print(f"p={probability} cache {cache}: lookup p50 {requests['lookup']['p50']:.2f} ms, "
                  f"hit ratio {requests['lookup']['hit_ratio']:.2f}", file=sys.stderr)
    return points


def plot_cache(points, path, title):
    """Lookup and trade p50 and the lookup hit ratio against p, one line per cache setting (Agg PNG)."""
    fig = Figure(figsize=(13, 4))
    panels = (("lookup", "p50", "ms"), ("trade", "p50", "ms"), ("lookup", "hit_ratio", "hit ratio"))
    for ax, (kind, figure, unit) in zip(fig.subplots(1, len(panels)), panels, strict=False):
        for n, cache in enumerate(CACHES):
            line = [(p["probability"], p["requests"][kind][figure]) for p in points
                    if p["cache"] == cache and p["requests"][kind][figure] is not None]
            if line:
                ax.plot(*zip(*line, strict=False), marker="o", color=f"C{n}", label=f"cache {cache}")
        ax.set_title(f"{kind} {figure}")
        ax.set_xlabel("probability")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def cache_table(points):
    """A markdown table of lookup and trade p50 / p99 and the hit ratio at each (p, cache) point."""
    lines = ["| p | cache | lookup p50 / p99 | trade p50 / p99 | lookup hit ratio |", "|--:|---|---|---|--:|"]
    for point in points:
        lookup, trade = point["requests"]["lookup"], point["requests"]["trade"]
        trades = "-" if trade["p50"] is None else f"{trade['p50']:.2f} / {trade['p99']:.2f}"
        lines.append(f"| {point['probability']:g} | {point['cache']} | {lookup['p50']:.2f} / {lookup['p99']:.2f} "
                     f"| {trades} | {lookup['hit_ratio']:.2f} |")
    return "\n".join(lines)


def plot(points, x_key, line_key, path, title):
    """Median and p99 latency of each request type against ``x_key``, one line per ``line_key`` value (Agg PNG)."""
    fig = Figure(figsize=(13, 7))
    axes = fig.subplots(2, len(KINDS), sharex=True)
    for row, figure in enumerate(("p50", "p99")):
        for col, kind in enumerate(KINDS):
            ax = axes[row][col]
            for n, value in enumerate(sorted({p[line_key] for p in points})):
                line = [(p[x_key], p["requests"][kind][figure]) for p in points
                        if p[line_key] == value and p["requests"][kind][figure] is not None]
                if line:
                    ax.plot(*zip(*line, strict=False), marker="o", color=f"C{n}", label=f"{line_key} = {value:g}")
            ax.set_title(f"{kind} {figure}")
            ax.set_ylabel("ms")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel(x_key)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def table(points):
    """A markdown table of latency (p50 / p90 / p99 ms) per request type at each point."""
    header = "| p | clients | " + " | ".join(f"{kind} p50 / p90 / p99" for kind in KINDS) + " | lookups/s | non-200 |"
    lines = [header, "|--:|--:|" + "---|" * len(KINDS) + "--:|---|"]
    for point in points:
        requests = point["requests"]
        cells = [" / ".join("-" if requests[kind][f] is None else f"{requests[kind][f]:.2f}"
                            for f in ("p50", "p90", "p99")) for kind in KINDS]
        errors = " ".join(f"{kind} {code}:{n}" for kind in KINDS for code, n in requests[kind]["errors"].items())
        lines.append(f"| {point['probability']:g} | {point['clients']} | " + " | ".join(cells)
                     + f" | {requests['lookup']['rate']:.0f} | {errors or '-'} |")
    return "\n".join(lines)


def section(points, args, machine, images):
    """The generated part of the report for one label."""
    where = f"the stack at {args.url}" if args.url else "a fresh native stack per point"
    command = "python -m bench.evaluate" + (f" --url {args.url} --label {args.label}" if args.url else "")
    parts = [header(args, machine, where, command), "", *[f"![{name}](img/{name}.png)" for name in images], "",
             table(points)]
    return "\n".join(parts)


def cache_section(points, args, machine, image):
    """The generated report block of the cache sweep."""
    command = f"python -m bench.evaluate --only cache --iterations {args.iterations}"
    return "\n".join([
        header(args, machine, "a fresh native stack per point, one client", command), "",
        f"![{image}](img/{image}.png)", "",
        f"Cache on (default size), off (`CACHE_SIZE=0`) and small (`CACHE_SIZE={CACHES['small']['CACHE_SIZE']}`, "
        "10 stocks):", "", cache_table(points)])


def header(args, machine, where, command):
    """Where and how a block's figures were measured."""
    return (f"Measured {datetime.date.today()} on {machine['cpu']} ({machine['cores']} cores), "
            f"Python {machine['python']}, RabbitMQ {machine['rabbitmq']}; an fsynced log append took "
            f"{machine['append_fdatasync_ms']:.2f} ms and an atomic CSV replace "
            f"{machine['csv_replace_fsync_ms']:.2f} ms (medians); {where}, {args.iterations} lookups per "
            f"client, seed {args.seed}. Reproduce with `{command}`.")


def update_report(label, text):
    """Replace the report's ``<!-- label:start -->...<!-- label:end -->`` block, or append one."""
    start, end = f"<!-- {label}:start -->", f"<!-- {label}:end -->"
    report = REPORT.read_text() if REPORT.exists() else "# Evaluation\n"
    block = f"{start}\n{text}\n{end}"
    if start in report and end in report:
        report = report[:report.index(start)] + block + report[report.index(end) + len(end):]
    else:
        report = f"{report.rstrip()}\n\n## Results: {label}\n\n{block}\n"
    REPORT.write_text(report)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="measure this running stack instead of starting native ones")
    parser.add_argument("--label", default="native", help="names the plots, results and report block")
    parser.add_argument("--iterations", type=int, default=300, help="lookups per client (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("clients", "cache"), help="run one of the two sweeps (default both)")
    args = parser.parse_args(argv)
    machine = describe()
    IMAGES.mkdir(parents=True, exist_ok=True)
    if args.only != "cache":
        points = sweep(args)
        results = ROOT / "bench" / "results" / f"evaluation-{args.label}.json"
        results.write_text(json.dumps({"machine": machine, "iterations": args.iterations, "points": points},
                                      indent=2))
        images = [f"latency-vs-clients-{args.label}", f"latency-vs-probability-{args.label}"]
        plot(points, "clients", "probability", IMAGES / f"{images[0]}.png", f"Latency against clients ({args.label})")
        plot(points, "probability", "clients", IMAGES / f"{images[1]}.png", f"Latency against p ({args.label})")
        update_report(args.label, section(points, args, machine, images))
    if args.only != "clients" and not args.url:
        cache_points = cache_sweep(args)
        label = f"cache-{args.label}"
        results = ROOT / "bench" / "results" / f"evaluation-{label}.json"
        results.write_text(json.dumps({"machine": machine, "iterations": args.iterations, "points": cache_points},
                                      indent=2))
        plot_cache(cache_points, IMAGES / f"{label}.png", f"Cache on, off and small ({args.label})")
        update_report(label, cache_section(cache_points, args, machine, label))


if __name__ == "__main__":
    main()

"""What tracing costs: the stack with tracing off and on, in short pairs: ``python -m bench.tracing [--quick]``.

"On" exports every span over OTLP/HTTP to a collector stand-in in this process, which decodes
each batch and counts its spans (``--exporter file`` writes OTLP JSON files under TRACE_DIR instead).
Besides throughput and latency, each run measures the CPU time the stack's processes spent per
request, which other work on a shared machine disturbs much less.
"""
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench import loads
from bench.__main__ import median_summary, parse_runs, run_parser
from harness.stack import Stack
from runtime.settings import Settings

LOADS = (("lookup", 1), ("lookup", 8), ("trade", 1), ("trade", 8))
LIMIT = 0.05  # the most tracing may cost: 5 % of throughput or of p50


class OtlpSink(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver that counts the spans it is sent and keeps nothing."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans, self.lock = 0, threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Receive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector: the exporters reuse their connection

    def do_POST(self):
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self.server.lock:
            self.server.spans += count
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def cpu_seconds(stack):
    """User and system CPU time the stack's processes have used so far."""
    ticks = 0
    for process in stack.processes.values():
        with open(f"/proc/{process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(make_stacks, args):
    """``{(mode, workload, connections): median summary}`` and ``{("change", workload, connections): changes}``.

    Each run starts a fresh pair of stacks (``make_stacks(seed)``: ``{"off": Stack, "on": Stack}``,
    both with ``PYTHONHASHSEED=seed``), so what one stack happens to be (which replica leads, how its
    processes and files lie) falls on one run's pair only, and more runs average it out; with the same
    two stacks for every run it fell on every pair alike. The two stacks of a pair share a hash seed,
    drawn anew for each run: processes hashed differently lay out their dicts and sets differently,
    which is a difference tracing does not make. Within a run each load goes ``args.pairs`` times to
    both modes in turn, in an order that alternates from pair to pair (off then on, on then off): the
    machine's speed drifts by more than 5 % within seconds here, and short pairs side by side see the
    same machine. The change is the median of all the pairs' changes (on against the off beside it),
    which a slow spell spoils for one pair only."""
    runs = {(mode, *load): [] for mode in ("off", "on") for load in LOADS}
    for run in range(args.runs):
        stacks = make_stacks(str(random.randrange(2**32)))
        with stacks["off"], stacks["on"]:
            for workload, connections in LOADS:
                for stack in stacks.values():
                    loads.wrk(stack.url, workload, connections, args.warmup)
                for pair in range(args.pairs):
                    for mode in (["off", "on"] if (run * args.pairs + pair) % 2 == 0 else ["on", "off"]):
                        stack = stacks[mode]
                        before = cpu_seconds(stack)
                        summary = loads.wrk(stack.url, workload, connections, args.duration)[workload]
                        summary["cpu_us"] = (cpu_seconds(stack) - before) / summary["count"] * 1e6
                        runs[mode, workload, connections].append(summary)
        print(f"run {run + 1} of {args.runs} done", file=sys.stderr)
    results = {}
    for workload, connections in LOADS:
        for mode in ("off", "on"):
            summaries = runs[mode, workload, connections]
            results[mode, workload, connections] = {
                **median_summary(summaries), "cpu_us": statistics.median(s["cpu_us"] for s in summaries)}
        results["change", workload, connections] = paired_changes(runs["off", workload, connections],
                                                                  runs["on", workload, connections])
    return results


def paired_changes(offs, ons):
    """The median relative change of rate, p50 and CPU per request from each off run to its paired on run."""
    return {key: statistics.median(on[key] / off[key] - 1 for off, on in zip(offs, ons, strict=True))
            for key in ("rate", "p50", "cpu_us")}


def report(results, args):
    """The results as a markdown table, one row per load, with the change tracing makes."""
    lines = [f"tracing on = {args.exporter} exporter, TRACE_SAMPLE_RATIO={args.sample_ratio}, "
             f"{args.replicas} order replica(s); {args.runs} run(s), a fresh pair of stacks each, "
             f"measuring each load in {args.pairs} pair(s) of {args.duration} s off and on, in "
             f"alternating order; a change is the median of the pairs' changes", "",
             "| load | conns | req/s off | req/s on | change | p50 ms off | p50 ms on | change "
             "| CPU µs/req off | CPU µs/req on | change | errors on |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    worst = 0.0
    for workload, connections in LOADS:
        off, on = results["off", workload, connections], results["on", workload, connections]
        change = results["change", workload, connections]
        worst = max(worst, -change["rate"], change["p50"])
        errors = " ".join(f"{kind}:{n}" for kind, n in on["errors"].items()) or "0"
        lines.append(f"| {workload} | {connections} | {off['rate']:.0f} | {on['rate']:.0f} | {change['rate']:+.1%} "
                     f"| {off['p50']:.3f} | {on['p50']:.3f} | {change['p50']:+.1%} "
                     f"| {off['cpu_us']:.0f} | {on['cpu_us']:.0f} | {change['cpu_us']:+.1%} | {errors} |")
    verdict = "met" if worst <= LIMIT else "MISSED"
    lines += ["", f"Worst cost: {worst:.1%} (target ≤ {LIMIT:.0%}): {verdict}"]
    return "\n".join(lines)


def parse_args(argv):
    parser = run_parser("python -m bench.tracing", __doc__, per="load and mode")
    parser.add_argument("--exporter", choices=("otlp", "file"), default="otlp")
    parser.add_argument("--replicas", type=int, default=1, help="order worker replicas (default 1)")
    parser.add_argument("--pairs", type=int, default=15,
                        help="off/on pairs per load and run, side by side (default 15; --quick: 2)")
    parser.add_argument("--sample-ratio", default=str(Settings().trace_sample_ratio),
                        help="TRACE_SAMPLE_RATIO of the traced stack (default: the services' default)")
    # Short pairs, and 60 of them per load: this machine's speed drifts by more than the 5 % to
    # resolve within a few seconds, and 30 pairs still left ±2-3 % (docs/design.md, "Tracing").
    parser.set_defaults(runs=4, duration=1)
    args = parse_runs(parser, argv)
    if args.quick:
        args.pairs = 2
    return args


def main(argv=None):
    args = parse_args(argv)
    sink, trace_dir = OtlpSink(), tempfile.mkdtemp(prefix="bazaar-traces-")
    traced = {"otlp": {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}, "file": {"TRACE_DIR": trace_dir}}[args.exporter]
    traced["TRACE_SAMPLE_RATIO"] = args.sample_ratio
    try:
        results = measure(lambda seed: {"off": Stack(env={"PYTHONHASHSEED": seed}, replicas=args.replicas),
                                        "on": Stack(env={**traced, "PYTHONHASHSEED": seed}, replicas=args.replicas)},
                          args)
        print(report(results, args))
        if args.exporter == "otlp":
            requests = sum(results["on", *load]["count"] for load in LOADS)
            print(f"The collector stand-in received {sink.spans:,} spans for {requests:,} measured requests "
                  f"(and the warm-ups').")
    finally:
        sink.shutdown()
        shutil.rmtree(trace_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

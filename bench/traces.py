"""Read the spans services wrote under TRACE_DIR and print each trace as a tree: ``python -m bench.traces DIR``.

``--hops`` prints instead where traced trades spent their time, hop by hop: the gaps between the
edges of their spans, both ends of every broker hop seen from the processes on either side (which
the services' histograms, each timed in one process, cannot tell apart from waiting there).
"""
import argparse
import json
import statistics
from pathlib import Path
from typing import NamedTuple

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class Span(NamedTuple):
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict

    @property
    def ms(self):
        return (self.end_ns - self.start_ns) / 1e6


def read_spans(directory):
    """Every span in the OTLP JSON lines files of ``directory``."""
    spans = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for resource in json.loads(line)["resourceSpans"]:
                service = _values(resource["resource"]["attributes"])["service.name"]
                for scope in resource["scopeSpans"]:
                    spans += [Span(s["traceId"], s["spanId"], s.get("parentSpanId", ""), s["name"],
                                   KINDS[s["kind"]], service, int(s["startTimeUnixNano"]),
                                   int(s["endTimeUnixNano"]), _values(s.get("attributes", [])))
                              for s in scope["spans"]]
    return spans


# A trade's way as gaps between its spans' edges, (what, (role, edge), (role, edge)), in order: they
# add up to its HTTP request. The roles are the spans ``trade_roles`` finds; an edge is a span's start
# (0), its end (1), or for the frontend's call the moments its batch went out ("sent") and its reply
# reached the batch thread ("replied"), which a call sent alone has at its start and end.
TRADE_HOPS = (
    ("frontend, before the call", ("http", 0), ("client", 0)),
    ("frontend, waiting for the batch in flight", ("client", 0), ("client", "sent")),
    ("request to the leader", ("client", "sent"), ("server", 0)),
    ("leader, before proposing", ("server", 0), ("publish", 0)),
    ("stream, to the leader's reader", ("publish", 0), ("receive", 0)),
    ("leader applies the entry", ("receive", 0), ("receive", 1)),
    ("leader fsyncs and settles", ("receive", 1), ("server", 1)),
    ("reply to the frontend", ("server", 1), ("client", "replied")),
    ("frontend, from its batch thread to the handler", ("client", "replied"), ("client", 1)),
    ("frontend, after the reply", ("client", 1), ("http", 1)),
)
BATCH_EDGES = {"sent": (0, "bazaar.batch.sent_ns"), "replied": (1, "bazaar.batch.replied_ns")}


def trade_roles(spans):
    """``{role: Span}`` of one traced trade's spans, or None if one is missing: the HTTP request, the
    frontend's call, the leader's handling, its publish to the stream and its reader's receive."""
    def first(kind, name=None, service=None):
        return next((s for s in spans if s.kind == kind and name in (None, s.name)
                     and service in (None, s.service)), None)
    roles = {"http": first("server", "POST /orders"), "client": first("client", "order/trade"),
             "server": first("server", "order/trade")}
    if roles["server"] is not None:
        leader = roles["server"].service
        roles |= {"publish": first("producer", service=leader), "receive": first("consumer", service=leader)}
    return roles if len(roles) == 5 and None not in roles.values() else None


def trade_hops(spans):
    """``[(what, median ms, traces)]`` over every complete trade trace in ``spans``, per TRADE_HOPS."""
    traces = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    found = [roles for trace in traces.values() if (roles := trade_roles(trace)) is not None]
    return [(what, statistics.median(_edge_ms(r, *to) - _edge_ms(r, *since) for r in found), len(found))
            for what, since, to in TRADE_HOPS] if found else []


def _edge_ms(roles, role, edge):
    """When the span of ``role`` started (``edge`` 0), ended (1), or a batched call's batch went out
    ("sent") or was answered ("replied"), in ms."""
    span = roles[role]
    if edge in BATCH_EDGES:
        edge, attribute = BATCH_EDGES[edge]
        if attribute in span.attributes:  # an OTLP JSON integer is a string
            return int(span.attributes[attribute]) / 1e6
    return (span.end_ns if edge else span.start_ns) / 1e6


def _values(attributes):
    return {a["key"]: next(iter(a["value"].values())) for a in attributes}


def tree(spans, trace_id):
    """``[(depth, span)]`` of one trace, each span under its parent, siblings by start time."""
    spans = sorted((s for s in spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
    ids = {s.span_id for s in spans}
    rows = []

    def walk(parent, depth):
        for span in spans:
            if span.parent_id == parent or (depth == 0 and span.parent_id not in ids):
                rows.append((depth, span))
                walk(span.span_id, depth + 1)

    walk("", 0)
    return rows


def render(rows):
    start = min(span.start_ns for _, span in rows)
    return "\n".join(f"{'  ' * depth}{span.name} ({span.kind}, {span.service}) "
                     f"+{(span.start_ns - start) / 1e6:.2f} ms, {span.ms:.2f} ms" for depth, span in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.traces", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--request-id", help="only the trace of the HTTP request with this X-Request-ID")
    parser.add_argument("--hops", action="store_true", help="the median time of each hop of the traced trades")
    args = parser.parse_args(argv)
    spans = read_spans(args.directory)
    if args.hops:
        hops = trade_hops(spans)
        print(f"{hops[0][2] if hops else 0} traced trades; median ms per hop:")
        for what, ms, _ in hops:
            print(f"{ms:8.3f}  {what}")
        return
    roots = [s for s in spans if not s.parent_id
             and args.request_id in (None, s.attributes.get("bazaar.request_id"))]
    for root in sorted(roots, key=lambda s: s.start_ns):
        print(f"trace {root.trace_id}\n{render(tree(spans, root.trace_id))}\n")


if __name__ == "__main__":
    main()

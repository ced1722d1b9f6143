"""Read the spans services wrote under TRACE_DIR and print each trace as a tree: ``python -m bench.traces DIR``."""
import argparse
import json
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
    args = parser.parse_args(argv)
    spans = read_spans(args.directory)
    roots = [s for s in spans if not s.parent_id
             and args.request_id in (None, s.attributes.get("bazaar.request_id"))]
    for root in sorted(roots, key=lambda s: s.start_ns):
        print(f"trace {root.trace_id}\n{render(tree(spans, root.trace_id))}\n")


if __name__ == "__main__":
    main()

"""A trade's time per hop, before and after, as stacked bars: ``python -m bench.hops OUT.png LABEL=FILE...``.

Each FILE is the output of ``python -m bench.breakdown trade --replicas 3`` (its means, one line per
histogram), taken on one code version; LABEL names its bar. A bar splits the mean HTTP trade into
the frontend's own share, the hop to the order leader and back, the leader's catalog call (gone
after issue 16) with the catalog's handling and fsync, the leader's fsync, and the rest of the
leader's handling (the stream round trip and its own code).
"""
import re
import sys
from pathlib import Path

from matplotlib.figure import Figure

LINE = re.compile(r"^\s+(\S+)\s+(\w+)\{(.*)\}: \d+ x ([0-9.]+) ms$")


def means(text):
    """``{(process, histogram, labels): mean ms}`` from a breakdown's output."""
    return {(m[1], m[2], m[3]): float(m[4]) for m in map(LINE.match, text.splitlines()) if m}


def stages(found):
    """The trade's stages in ms, outermost first, from one breakdown's means."""
    def one(histogram, labels, process=None):
        values = [ms for (where, name, shown), ms in found.items()
                  if name == histogram and shown == labels and process in (None, where)]
        return values[0] if values else 0.0
    leader = next(where for (where, name, shown) in found
                  if name == "rpc_handling_duration_seconds" and shown == "method=trade,service=order")
    http, rpc = one("http_request_duration_seconds", "method=POST,route=/orders"), \
        one("rpc_call_duration_seconds", "method=trade,service=order", "frontend")
    handling = one("rpc_handling_duration_seconds", "method=trade,service=order", leader)
    catalog_call = one("rpc_call_duration_seconds", "method=trade,service=catalog", leader)
    catalog_handling = one("rpc_handling_duration_seconds", "method=trade,service=catalog")
    catalog_fsync = one("storage_fsync_duration_seconds", "", "catalog") if catalog_call else 0.0
    fsync = one("storage_fsync_duration_seconds", "", leader)
    return {"frontend (HTTP, Flask)": http - rpc, "frontend → leader → frontend": rpc - handling,
            "leader → catalog → leader": catalog_call - catalog_handling,
            "catalog handling": catalog_handling - catalog_fsync, "catalog fsync": catalog_fsync,
            "leader: stream round trip and own code": handling - catalog_call - fsync, "leader fsync": fsync}


def plot(bars, path):
    """Horizontal stacked bars, one per ``{label: stages}``, to a PNG."""
    fig = Figure(figsize=(10, 2.0 + 0.8 * len(bars)))
    ax = fig.subplots()
    names = list(next(iter(bars.values())))
    for i, name in enumerate(names):
        lefts = [sum(list(s.values())[:i]) for s in bars.values()]
        ax.barh(list(bars), [s[name] for s in bars.values()], left=lefts, label=name, color=f"C{i}")
    ax.set_xlabel("ms (mean of a trade at 1 connection)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    out, *pairs = argv if argv is not None else sys.argv[1:]
    bars = {label: stages(means(Path(path).read_text())) for label, path in (pair.split("=", 1) for pair in pairs)}
    for label, found in bars.items():
        print(label + ": " + ", ".join(f"{name} {ms:.2f}" for name, ms in found.items()))
    plot(bars, out)


if __name__ == "__main__":
    main()

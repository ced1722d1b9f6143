"""Latency statistics for the client: percentiles, per-request-type summaries and the printed table."""
import math

KINDS = ("lookup", "trade", "order query")


def percentile(sorted_values, q):
    """Nearest-rank q-th percentile (0 < q <= 100) of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(records):
    """Merge one request type's records from several sessions into count, rate, errors and latency (ms)."""
    latencies = sorted(ms for record in records for ms in record["latencies"])
    statuses: dict[str, int] = {}
    for record in records:
        for code, n in record["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    return {
        "count": len(latencies),
        "rate": sum(len(r["latencies"]) / r["seconds"] for r in records if r["seconds"] > 0),
        "errors": {code: n for code, n in sorted(statuses.items()) if code != "200"},
        "mean": sum(latencies) / len(latencies) if latencies else None,
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else None,
        "hit_ratio": sum(r.get("hits", 0) for r in records) / len(latencies) if latencies else None,
    }


def aggregate(sessions):
    """Summaries per request type over a list of sessions' ``{kind: record}`` dicts."""
    return {kind: summarise([s[kind] for s in sessions if kind in s]) for kind in KINDS}


def format_table(summary):
    """A fixed-width text table of ``aggregate``'s result."""
    columns = ("mean", "p50", "p90", "p99", "max")
    lines = [f"{'request':<12}{'count':>7}{'req/s':>9}" + "".join(f"{c + ' ms':>9}" for c in columns) + "  errors"]
    for kind, s in summary.items():
        figures = "".join("        -" if s[c] is None else f"{s[c]:9.2f}" for c in columns)
        errors = " ".join(f"{code}:{n}" for code, n in s["errors"].items()) or "-"
        lines.append(f"{kind:<12}{s['count']:>7}{s['rate']:9.1f}{figures}  {errors}")
    return "\n".join(lines)

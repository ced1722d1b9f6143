"""The trading client: its pure parts, and one run against a live stack."""
import json

from client.__main__ import main
from client.stats import aggregate, format_table, percentile, summarise
from client.trader import order_mismatches


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 90) == 7.0
    assert percentile([], 50) is None


def test_summarise_merges_sessions():
    records = [
        {"latencies": [1.0, 3.0], "statuses": {"200": 2}, "seconds": 1.0, "hits": 1},
        {"latencies": [2.0, 10.0], "statuses": {"200": 1, "409": 1}, "seconds": 2.0, "hits": 2},
    ]
    s = summarise(records)
    assert s["count"] == 4
    assert s["rate"] == 2 / 1.0 + 2 / 2.0
    assert s["errors"] == {"409": 1}
    assert (s["mean"], s["p50"], s["max"]) == (4.0, 2.0, 10.0)
    assert s["hit_ratio"] == 3 / 4


def test_aggregate_reports_every_kind_even_when_absent():
    sessions = [{"lookup": {"latencies": [1.0], "statuses": {"ConnectionRefusedError": 1}, "seconds": 0.0}}]
    summary = aggregate(sessions)
    assert summary["lookup"]["errors"] == {"ConnectionRefusedError": 1}
    assert summary["lookup"]["rate"] == 0
    assert summary["trade"] == {"count": 0, "rate": 0, "errors": {}, "mean": None,
                                "p50": None, "p90": None, "p99": None, "max": None, "hit_ratio": None}
    table = format_table(summary)
    assert "ConnectionRefusedError:1" in table
    assert len(table.splitlines()) == 4


def test_order_mismatches_reports_differences_and_failed_queries():
    placed = [
        {"number": 0, "name": "FishCo", "type": "buy", "quantity": 2},
        {"number": 1, "name": "BoarCo", "type": "sell", "quantity": 1},
        {"number": 2, "name": "Getafix", "type": "buy", "quantity": 5},
    ]
    replies = {
        0: (200, {"data": dict(placed[0])}),
        1: (200, {"data": {**placed[1], "type": "buy"}}),
        2: (404, {"error": {"code": 404, "message": "no such order"}}),
    }
    assert order_mismatches(placed, replies) == [
        "order 1: type 'buy' != 'sell'",
        "order 2: lookup returned 404",
    ]


def test_client_against_live_stack(frontend_url, tmp_path):
    out = tmp_path / "client.json"
    status = main(["--url", frontend_url, "--clients", "2", "--iterations", "50", "-p", "0.5",
                   "--seed", "7", "--json", str(out)])
    report = json.loads(out.read_text())
    assert status == 0 and report["mismatches"] == []
    requests = report["requests"]
    assert requests["lookup"]["count"] == 100 and requests["lookup"]["errors"] == {}
    assert requests["trade"]["count"] > 0
    assert set(requests["trade"]["errors"]) <= {"409"}
    assert requests["order query"]["count"] == requests["trade"]["count"] - requests["trade"]["errors"].get("409", 0)

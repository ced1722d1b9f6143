"""The benchmark's targets are judged against the floors of the same run."""
from bench.__main__ import REPLICATED, budget, targets


def row(system, workload, connections, rate, p50, p99=None):
    return {"system": system, "workload": workload, "connections": connections, "rate": rate, "p50": p50,
            "p99": p99 if p99 is not None else 2 * p50}


def test_each_target_is_a_ratio_of_the_floors_measured_beside_it():
    rows = [row("rpc floor", "echo", 1, 1000, 0.5), row("http floor", "trade", 1, 3000, 0.3),
            row("http floor", "lookup", 1, 3000, 0.3), row("http floor", "lookup", 8, 2500, 3.0),
            row(REPLICATED, "trade", 1, 300, 2.0), row(REPLICATED, "trade", 8, 800, 9.0, p99=30.0),
            row(REPLICATED, "trade", 32, 900, 30.0), row(REPLICATED, "lookup", 1, 2500, 0.35),
            row(REPLICATED, "lookup", 8, 1900, 3.5)]
    found = {what: (round(limit, 2), met) for what, _, limit, met in targets(rows)}
    assert found["trade x 8 req/s >= 0.7 x rpc floor x 1"] == (700, True)
    assert found["trade x 32 req/s >= 1.0 x rpc floor x 1"] == (1000, False)
    assert found["trade x 1 p50 ms <= http floor p50 + 3 x rpc floor p50 + 0.5"] == (2.3, True)
    assert found["trade x 8 p99 ms <= 3 x p50"] == (27.0, False)
    assert found["cached lookup x 8 req/s >= 0.8 x http floor"] == (2000, False)


def test_the_budget_of_one_rpc_per_trade_adds_the_floors_cpu_and_divides_the_cores_by_it():
    rows = [{**row("http floor", "trade", 8, 2500, 3.0), "cpu_ms": {"frontend": 0.4, "load": 0.3}},
            {**row("rpc floor", "echo", 8, 2200, 3.4), "cpu_ms": {"echo server": 0.3, "load": 0.3, "rabbitmq": 0.2}}]
    ms, rate = budget(rows, cores=2)
    assert round(ms, 2) == 1.5 and round(rate) == 1333

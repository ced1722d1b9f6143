"""The benchmark's targets are judged against the floors of the same run, measured side by side."""
import functools
from types import SimpleNamespace

import bench.cpu
from bench.__main__ import FIGURES, REPLICATED, budget, measure_side_by_side, targets


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


def test_the_floors_and_the_stack_are_measured_side_by_side_in_rounds_of_alternating_order(monkeypatch):
    ran, clock = [], iter(range(1000))
    usage = bench.cpu.Usage
    monkeypatch.setattr(bench.cpu, "snapshot", lambda pids: {"load": usage(0.0, 0),
                                                              **{name: usage(next(clock), 0) for name in pids}})

    def load(system, connections, seconds):
        ran.append((system, connections, seconds))
        return {"trade": {"count": 10, "errors": {}, **dict.fromkeys(FIGURES, len(ran))}}

    def loads_for(system):
        return lambda connections: [functools.partial(load, system, connections)] if connections < 32 else []

    systems = [(name, loads_for(name), {name: 1}) for name in ("floor", "stack")]
    rows = measure_side_by_side(systems, SimpleNamespace(runs=2, warmup=1, duration=5))
    measured = [(system, connections) for system, connections, seconds in ran if seconds == 5]
    assert measured == [("floor", 1), ("stack", 1), ("floor", 8), ("stack", 8),   # round 1
                        ("stack", 1), ("floor", 1), ("stack", 8), ("floor", 8)]   # round 2, the other way round
    assert all(seconds == 1 for _, _, seconds in ran[::2])  # each run after a warm-up of its own
    stack_1 = next(r for r in rows if r["system"] == "stack" and r["connections"] == 1)
    assert stack_1["p50"] == (4 + 10) / 2 and stack_1["count"] == 20  # the median of its two rounds
    assert stack_1["cpu_ms"] == {"load": 0.0, "stack": 100.0}  # one clock tick per run: 2 s over 20 trades
    assert stack_1["switches"] == {"load": 0.0, "stack": 0.0}
    assert [(r["system"], r["connections"]) for r in rows] == [("floor", 1), ("floor", 8), ("stack", 1), ("stack", 8)]

"""The tracing bench judges each load by the median of its paired off/on runs."""
import contextlib
from types import SimpleNamespace

from bench import tracing
from bench.tracing import LOADS, measure, paired_changes, report


def run(rate, p50, cpu_us):
    return {"rate": rate, "p50": p50, "cpu_us": cpu_us, "count": 1, "errors": {},
            "mean": p50, "p90": p50, "p99": p50, "max": p50}


def test_a_slow_spell_spoils_one_pair_not_the_change():
    offs = [run(1000, 1.0, 300), run(1000, 1.0, 300), run(500, 2.0, 300)]
    ons = [run(980, 1.02, 303), run(980, 1.02, 303), run(1000, 1.0, 300)]
    change = paired_changes(offs, ons)
    assert round(change["rate"], 3) == -0.02 and round(change["p50"], 3) == 0.02
    assert round(change["cpu_us"], 3) == 0.01


def test_the_verdict_is_the_worst_change_of_throughput_or_p50():
    args = SimpleNamespace(exporter="otlp", sample_ratio="0.05", replicas=3, runs=1, pairs=1, duration=1)
    results = {}
    for load in LOADS:
        results["off", *load], results["on", *load] = run(1000, 1.0, 300), run(990, 1.01, 303)
        results["change", *load] = {"rate": -0.01, "p50": 0.01, "cpu_us": 0.01}
    assert report(results, args).endswith("Worst cost: 1.0% (target ≤ 5%): met")
    results["change", "trade", 8]["p50"] = 0.06
    assert report(results, args).endswith("Worst cost: 6.0% (target ≤ 5%): MISSED")


class FakeStack(contextlib.nullcontext):
    """Enough of a Stack for ``measure``: a URL that names it, no processes."""

    def __init__(self, url):
        super().__init__()
        self.url, self.processes = url, {}


def test_each_run_measures_a_fresh_pair_of_stacks_sharing_a_hash_seed_in_alternating_pairs(monkeypatch):
    made, measured, seeds = [], [], []

    def make_stacks(seed):
        made.append({mode: FakeStack(f"{mode}-{len(made) + 1}") for mode in ("off", "on")})
        seeds.append(seed)
        return made[-1]

    def wrk(url, workload, connections, seconds):
        if seconds == 5:  # the measured runs, not the warm-ups
            measured.append(url)
        return {workload: run(1000, 1.0, 300)}

    monkeypatch.setattr(tracing.loads, "wrk", wrk)
    clock = iter(range(1000))
    monkeypatch.setattr(tracing, "cpu_seconds", lambda stack: next(clock))  # one second per run
    results = measure(make_stacks, SimpleNamespace(runs=2, pairs=3, warmup=1, duration=5))
    assert len(made) == 2
    assert len(set(seeds)) == 2 and all(0 <= int(seed) < 2**32 for seed in seeds)  # a hash seed per pair
    # Each load: three pairs side by side, off and on in turn, the order alternating from pair to pair.
    assert measured == (["off-1", "on-1", "on-1", "off-1", "off-1", "on-1"] * len(LOADS)
                        + ["on-2", "off-2", "off-2", "on-2", "on-2", "off-2"] * len(LOADS))
    assert results["change", "trade", 8] == {"rate": 0.0, "p50": 0.0, "cpu_us": 0.0}

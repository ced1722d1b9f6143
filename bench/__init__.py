"""Benchmarks and the evaluation sweep: ``python -m bench`` and ``python -m bench.evaluate``."""

"""Runs the stack as child processes, for the tests, the benchmarks and the fault suites."""

"""bench.breakdown's arithmetic: the mean of what a histogram recorded between two readings."""
import pytest

from bench.breakdown import mean_ms

KEY = ("bazaar_rpc_call_duration_seconds", (("method", "trade"), ("service", "order")))


def test_mean_of_the_observations_between_two_readings():
    before = {KEY: (10, 0.050)}
    after = {KEY: (14, 0.062), ("bazaar_other_seconds", ()): (3, 0.3)}
    assert mean_ms(before, after) == {KEY: (4, pytest.approx(3.0)),
                                      ("bazaar_other_seconds", ()): (3, pytest.approx(100.0))}


def test_a_histogram_that_did_not_move_is_left_out():
    assert mean_ms({KEY: (10, 0.05)}, {KEY: (10, 0.05)}) == {}

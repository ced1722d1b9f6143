"""bench.longevity on a small scale, so the commands the README gives keep working."""
import pytest

from bench import longevity


@pytest.mark.slow
def test_longevity_and_soak_run_and_report(capsys):
    longevity.main(["--trades", "20000", "--repeats", "20", "--soak", "--soak-trades", "500"])
    out = capsys.readouterr().out
    assert "| catalog |" in out and "| order |" in out and "GET /orders/19999: p50" in out
    assert "soak: " in out

"""bench.longevity on a small scale, so the command the README gives keeps working."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the soak needs wrk (apt-get install wrk)")
def test_longevity_and_soak_run_and_report(amqp_url):
    result = subprocess.run([sys.executable, "-m", "bench.longevity", "--trades", "20000", "--repeats", "20",
                             "--soak", "--soak-trades", "500"], cwd=ROOT, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "AMQP_URL": amqp_url})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| catalog |" in result.stdout and "| order |" in result.stdout
    assert "GET /orders/19999: p50" in result.stdout and "soak: " in result.stdout

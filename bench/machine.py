"""What the benchmark ran on: CPU model, cores, Python and RabbitMQ versions, cost of an fsync."""
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from storage.files import AppendLog, replace_atomically


def rabbitmq_version():
    """The local RabbitMQ node's version, or "unknown" when it cannot be asked."""
    try:
        result = subprocess.run(["rabbitmq-diagnostics", "-q", "server_version"],
                                capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def disk_costs(samples=100):
    """Median ms of the services' two durable writes in a temporary directory: a log append, a CSV replace."""
    with tempfile.TemporaryDirectory() as tmp:
        log = AppendLog.open(Path(tmp) / "log.csv", ("a", "b"))
        costs = {"append_fdatasync_ms": lambda: log.append((1, 2)),
                 "csv_replace_fsync_ms": lambda: replace_atomically(Path(tmp) / "t.csv", ("a", "b"), [(1, 2)] * 10)}
        medians = {name: statistics.median(_timed(write) for _ in range(samples)) for name, write in costs.items()}
        log.close()
    return medians


def _timed(action):
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def describe():
    """A dict describing this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "rabbitmq": rabbitmq_version(),
        **disk_costs(),
    }

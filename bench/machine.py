"""What the benchmark ran on: CPU model, cores, Python and RabbitMQ versions."""
import os
import platform
import subprocess
from pathlib import Path


def rabbitmq_version():
    """The local RabbitMQ node's version, or "unknown" when it cannot be asked."""
    try:
        result = subprocess.run(["rabbitmq-diagnostics", "-q", "server_version"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


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
    }

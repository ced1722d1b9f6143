"""Load generators for the HTTP targets; each returns ``{workload: summary}`` in the client's summary shape."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from client.trader import DEFAULT_STOCKS

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")


def wrk(url, mode, connections, seconds):
    """``mode`` ("lookup" or "trade") with wrk on ``connections`` keep-alive connections."""
    command = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "-s", str(WRK_SCRIPT),
               url, "--", mode, *DEFAULT_STOCKS]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(next(line[5:] for line in output.splitlines() if line.startswith("JSON ")))
    errors = {"non-2xx": result["non_2xx"], "socket": result["socket_errors"]}
    return {mode: {
        "count": result["requests"],
        "rate": result["requests"] / result["seconds"],
        "errors": {kind: n for kind, n in errors.items() if n},
        **{key: result[key] for key in ("mean", "p50", "p90", "p99", "max")},
    }}


def mixed(url, connections, seconds, probability=0.5):
    """The trading client at ``probability`` with ``connections`` sessions; its lookups and trades."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "client", "--url", url, "--clients", str(connections),
                        "--duration", str(seconds), "-p", str(probability), "--json", out.name],
                       check=True, stdout=subprocess.DEVNULL)
        requests = json.load(out)["requests"]
    return {f"mixed {kind}": requests[kind] for kind in ("lookup", "trade")}

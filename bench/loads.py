"""Load generators for the HTTP targets; each returns ``{workload: summary}`` in the client's summary shape."""
import json
import subprocess
import sys
import tempfile
import threading
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


class ClientThreads:
    """``with Load(...) as load:`` runs ``_trade(rng)`` in a thread per random generator until ``done`` is set,
    which leaving the block does; subclasses define ``_trade``."""

    def __init__(self, rngs):
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._trade, args=(rng,)) for rng in rngs]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)

"""How fast a replica on an empty directory reads the order stream: ``python -m bench.catchup``.

A leader (``ReplicatedLog``, in this process) writes ``--entries`` one-order entries, one at a time as
trades at one connection do; then a replica starts on an empty data directory, and the time until
its log holds every order gives entries a second. Runs ``--runs`` such replicas one after another
on the same stream, in a namespace of its own on the broker at AMQP_URL.
"""
import argparse
import dataclasses
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from harness.broker import delete_namespace
from ledger.orders import OrderLog
from ledger.replication import ReplicatedLog
from runtime.settings import Settings

TIMEOUT = 300.0  # seconds a replica may take to catch up


def replica(settings, data_dir):
    """A started replica on ``data_dir``: ``(ReplicatedLog, OrderLog)``."""
    orders = OrderLog(data_dir)
    log = ReplicatedLog(dataclasses.replace(settings, data_dir=data_dir), orders, data_dir.name)
    log.start()
    return log, orders


def catch_up(settings, data_dir, entries, timeout):
    """Seconds a new replica on ``data_dir`` takes to hold ``entries`` orders (None: not within ``timeout``)."""
    log, orders = replica(settings, data_dir)
    started = time.monotonic()
    try:
        while orders.next_number < entries:
            if time.monotonic() - started > timeout:
                return None
            time.sleep(0.01)
        return time.monotonic() - started
    finally:
        log.stop()
        orders.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.catchup", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000, help="entries in the stream (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="replicas that catch up in turn (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    settings = dataclasses.replace(Settings.from_env(), namespace=f"bench-{uuid.uuid4().hex[:8]}", data_dir=root)
    leader, orders = replica(settings, root / "leader")
    try:
        for n in range(args.entries):
            leader.propose(f"t{n}", "FishCo", "buy" if n % 2 == 0 else "sell", 1)
        for run in range(args.runs):
            seconds = catch_up(settings, root / f"replica-{run}", args.entries, TIMEOUT)
            print(f"replica {run}: {args.entries} entries in "
                  + (f"more than {TIMEOUT:g} s" if seconds is None
                     else f"{seconds:.2f} s, {args.entries / seconds:,.0f} entries a second"))
    finally:
        leader.stop()
        orders.close()
        delete_namespace(settings)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

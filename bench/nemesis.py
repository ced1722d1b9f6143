"""A fault-injection run in the spirit of Jepsen: ``python -m bench.nemesis --seed S --minutes M``.

Starts a stack whose three order replicas and two catalog replicas each run on a host of their
own (bench.partition) with their data on a small disk of their own (bench.faults); concurrent
clients trade with Idempotency-Keys and record the history (bench.history) while the nemesis
injects faults (bench.fault_types) one at a time at moments drawn from the seed: quiet for a few seconds, a fault
held for its time, healed; every type once per round, in an order drawn from the seed. Then it
lets the replicas settle, stops the stack, checks the history and the files (bench.checker), and
prints each property's violations and, per fault type, how many were injected and the longest
unavailability. Thread timing still varies from run to run, so a seed reproduces the faults and
their moments, not every interleaving.

Needs root (namespaces, tmpfs) and socat. ``broker-restart`` stops the local RabbitMQ app: run it
under the heavy lock. Exit status 1 when a property was violated.
"""
import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from bench.checker import PROPERTIES, check, saved_stocks, unavailability
from bench.fault_types import FAULTS
from bench.faults import small_disk
from bench.history import Traders
from bench.partition import Hosts
from harness.stack import Stack
from runtime.settings import Settings

REPLICAS, CATALOGS = 3, 2
QUIET = (2.0, 5.0)  # seconds between faults
RECOVERY = 60.0  # seconds a fault's end waits for trading to resume
CATCH_UP = 10.0  # seconds a replica's fault waits for its log to catch up (longer is reported as inf)


class Cluster:
    """The system under test: a stack whose order replicas (``replicas``) and catalog replicas
    (``catalogs``) each run on a host of their own, with their data on a small disk of their own.
    ``with Cluster() as cluster:`` gives it running."""

    def __init__(self, amqp_url=None, replicas=REPLICAS, catalogs=CATALOGS, disk_size="64m"):
        self.amqp_url = amqp_url or os.environ.get("AMQP_URL") or Settings().amqp_url
        self.replicas = [f"order-{i}" for i in range(replicas)]
        self.catalogs = [f"catalog-{i}" for i in range(catalogs)]
        self.disk_size, self.disks = disk_size, {}  # replica -> the directory on its disk
        self._exit = contextlib.ExitStack()

    @property
    def everyone(self):
        """Every replica that derives the order log and the stocks from the stream."""
        return [*self.replicas, *self.catalogs]

    def __enter__(self):
        try:
            self.hosts = self._exit.enter_context(Hosts(len(self.everyone), self.amqp_url))
            self.stack = Stack(env={"AMQP_URL": self.amqp_url}, replicas=len(self.replicas),
                               catalog_replicas=len(self.catalogs), launch=self._launch)
            self.data_dir = self.stack.settings.data_dir
            self._exit.callback(shutil.rmtree, self.data_dir, ignore_errors=True)  # once the disks are gone
            self._exit.enter_context(self.stack)
            self.url = self.stack.url
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc):
        self._exit.close()

    def _launch(self, name, argv, env):
        """A replica starts on its host, its data on its disk (mounted at its first start), and serves its
        metrics (how the stack knows it is ready, and whether it leads) on its host's address."""
        if name not in self.everyone:
            return argv, env
        if name not in self.disks:
            disk = self._exit.enter_context(small_disk(Path(env["DATA_DIR"]), self.disk_size))
            if disk is None:
                raise OSError(f"cannot mount a small disk for {name}: {small_disk.refused}")
            self.disks[name] = disk
        host = self.host(name)
        address = self.hosts.addresses[host][1]
        self.stack.metrics_urls[name] = f"http://{address}:{env['METRICS_PORT']}/metrics"
        return self.hosts.command(host, argv), {**env, "AMQP_URL": self.hosts.amqp_url(host), "METRICS_HOST": address}

    def host(self, replica):
        return self.everyone.index(replica)

    def leader(self):
        return self.stack.leader()

    def restart(self, name):
        """kill -9 a service and start it again at once on its own data."""
        self.stack.kill(name)
        self.stack.start(name)

    def revive(self):
        """Start again each service that exited by itself; return ``{name: exit status}``."""
        exited = {name: p.returncode for name, p in self.stack.processes.items() if p.poll() is not None}
        for name in exited:
            self.stack.processes.pop(name)
            self.stack.start(name)
        return exited

    def catch_up(self, replica, timeout=30):
        """Wait until ``replica``'s log is as long as the longest one was when called (the logs are
        prefixes of one another); return the seconds it took, or None if it did not."""
        started, paths = time.monotonic(), [self.stack.replica_dir(name) / "order_log.csv" for name in self.everyone]
        goal = max(path.stat().st_size for path in paths if path.exists())
        path = self.stack.replica_dir(replica) / "order_log.csv"
        while time.monotonic() - started < timeout:
            if path.exists() and path.stat().st_size >= goal:
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def logs(self):
        """Each replica's order log, as bytes."""
        return {name: (self.stack.replica_dir(name) / "order_log.csv").read_bytes() for name in self.everyone}

    def settle(self, timeout=60):
        """Wait until the replicas' logs are identical and each one's saved stock table is as of the
        log's end; return the seconds it took, or None if they did not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError, ValueError):
                logs = set(self.logs().values())
                lines = logs.pop().count(b"\n") - 1 if len(logs) == 1 else None
                if all(next_number == lines for next_number, _ in self._saved().values()):
                    return time.monotonic() - started
            time.sleep(0.5)
        return None

    def _saved(self):
        return {name: saved_stocks(self.stack.replica_dir(name)) for name in self.everyone}

    def stop(self):
        """Stop every process; return the exit statuses."""
        order = ["frontend", *self.everyone]
        return {name: self.stack.stop(name)[name] for name in order if name in self.stack.processes}

    def stocks(self):
        """Each replica's stock table, as it saved it with its stream position."""
        return {name: stocks for name, (_, stocks) in self._saved().items()}


def inject(cluster, traders, rng, faults, seconds, stopping):
    """Inject ``faults`` one at a time at random moments for ``seconds``; return the episodes.

    After each fault it waits for a trade to succeed (up to RECOVERY s), so that each outage is its
    own fault's and a leader that took over has said so in its log before the next fault picks one.
    """
    episodes, clock, turn = [], traders.clock, []
    while not stopping.wait(rng.uniform(*QUIET)) and clock() < seconds:
        if not turn:  # each type once per round, in an order of the seed's: a short run still has each
            turn = rng.sample(faults, len(faults))
        fault = FAULTS[turn.pop()]
        hold, start = rng.uniform(*fault.hold), clock()
        target = fault.start(cluster, rng)
        try:
            stopping.wait(hold)
        finally:
            fault.end(cluster, target)
        episode = {"fault": fault.name, "target": target, "start": start, "end": clock(),
                   "inherent": fault.inherent, "exited": cluster.revive()}
        if target in cluster.everyone:
            episode["caught_up_s"] = cluster.catch_up(target, CATCH_UP)
        episodes.append(episode)
        while traders.last_success < episode["end"] and clock() < episode["end"] + RECOVERY:
            if stopping.wait(0.05):
                break
        print(f"{start:7.1f} s: {fault.name} on {target} for {episode['end'] - start:.1f} s"
              + (f"; exited by themselves: {episode['exited']}" if episode["exited"] else ""), file=sys.stderr)
    return episodes


def run(seed, minutes, faults=tuple(FAULTS), clients=4, stopping=None):
    """One run; return its result: the violations, the unavailability per fault type, the episodes."""
    rng, stopping = random.Random(seed), stopping or threading.Event()
    with Cluster() as cluster:
        t0 = time.monotonic()
        clock = lambda: time.monotonic() - t0  # noqa: E731
        with Traders(cluster.url, [random.Random(rng.random()) for _ in range(clients)], clock) as traders:
            episodes = inject(cluster, traders, rng, list(faults), minutes * 60, stopping)
        settled = cluster.settle()
        exits = cluster.stop()
        violations = check(traders.history, cluster.logs(), cluster.stocks())
    statuses = [attempt[2] for operation in traders.history for attempt in operation["attempts"]]
    return {
        "seed": seed, "minutes": minutes, "faults": unavailability(traders.history, episodes),
        "violations": violations, "episodes": episodes, "settled_s": settled, "exit_statuses": exits,
        "trades": len(traders.history), "answers": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
        "history": traders.history,
    }


def report(result):
    """The run in a few lines: per fault type, then each property."""
    lines = [f"{'fault':<20}{'injected':>9}{'longest gap s':>15}{'longest catch-up s':>20}"]
    for name, kind in sorted(result["faults"].items()):
        catch_up = kind.get("longest_catch_up_s")
        lines.append(f"{name:<20}{kind['injected']:>9}{kind['longest_gap_s']:>15.2f}"
                     + ("" if catch_up is None else f"{catch_up:>20.2f}"))
    lines.append(f"trades {result['trades']}, answers {result['answers']}, settled after "
                 f"{result['settled_s']} s, exit statuses {result['exit_statuses']}")
    for name in PROPERTIES:
        found = result["violations"][name]
        lines.append(f"{name:<13} {'ok' if not found else f'{len(found)} VIOLATIONS: ' + '; '.join(found[:3])}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.nemesis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated fault types (default all: {','.join(FAULTS)})")
    parser.add_argument("--clients", type=int, default=4, help="concurrent trading clients (default 4)")
    parser.add_argument("--json", metavar="FILE", help="also write the result, history included, to FILE")
    args = parser.parse_args(argv)
    faults = args.faults.split(",")
    if unknown := set(faults) - set(FAULTS):
        parser.error(f"unknown fault types {sorted(unknown)}; known: {', '.join(FAULTS)}")
    print(f"nemesis seed {args.seed}: python -m bench.nemesis --seed {args.seed} --minutes {args.minutes:g} "
          f"--faults {args.faults}", file=sys.stderr)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # ends the run early, healing and cleaning up
    result = run(args.seed, args.minutes, faults, args.clients, stopping)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(report(result))
    return 1 if any(result["violations"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The faults a nemesis injects: one small class per kind, each starting and ending itself.

``start(cluster, rng)`` injects the fault into the system under test (bench.nemesis.Cluster) and
returns its target; ``end(cluster, target)`` heals it. ``hold`` is how long it lasts (seconds, drawn from the
range). An ``inherent`` fault takes the service away whatever the design (the broker itself stops),
so its unavailability is counted from its end. A new kind is a class here and an entry in FAULTS.
"""
import shutil
import signal
import subprocess

from bench.faults import fill

FILLER = ".filler"


class Fault:
    name, hold, inherent = "", (0.0, 0.0), False

    def start(self, cluster, rng):
        raise NotImplementedError

    def end(self, cluster, target):
        """Undo the fault (nothing, for one that is over once started)."""


class ReplicaFault(Fault):
    """A fault of one replica: the order leader, an order follower or a catalog replica, chosen at random."""

    def __init__(self, role):
        self.role, self.name = role, f"{self.kind}-{role}"

    def start(self, cluster, rng):
        if self.role == "catalog":  # no leader: they answer lookups side by side
            target = rng.choice(cluster.catalogs)
        else:
            leader = cluster.leader()
            target = leader if self.role == "leader" else rng.choice(
                [name for name in cluster.replicas if name != leader])
        self.inject(cluster, target)
        return target


class Kill(ReplicaFault):
    """kill -9, started again at once on its own data."""
    kind = "kill"

    def inject(self, cluster, target):
        cluster.restart(target)


class Wipe(ReplicaFault):
    """kill -9, its data directory emptied (a lost disk), started again: it rebuilds from the stream."""
    kind = "wipe"

    def inject(self, cluster, target):
        cluster.stack.kill(target)
        for path in cluster.stack.replica_dir(target).iterdir():  # the directory is its disk's mount point
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        cluster.stack.start(target)


class Pause(ReplicaFault):
    """SIGSTOP, then SIGCONT: a GC pause, a VM freeze, a stalled disk."""
    kind, hold = "pause", (2.0, 10.0)

    def inject(self, cluster, target):
        cluster.stack.processes[target].send_signal(signal.SIGSTOP)

    def end(self, cluster, target):
        cluster.stack.processes[target].send_signal(signal.SIGCONT)


class DiskFull(ReplicaFault):
    """The replica's disk fills up; then the filler goes."""
    kind, hold = "disk-full", (2.0, 10.0)

    def inject(self, cluster, target):
        fill(cluster.disks[target] / FILLER)

    def end(self, cluster, target):
        (cluster.disks[target] / FILLER).unlink()


class Partition(ReplicaFault):
    """The replica's host is cut off from the broker; then the link returns."""
    kind, hold = "partition", (2.0, 10.0)

    def inject(self, cluster, target):
        cluster.hosts.cut(cluster.host(target))

    def end(self, cluster, target):
        cluster.hosts.heal(cluster.host(target))


class BrokerRestart(Fault):
    """The local RabbitMQ stops its app for a while, then starts it (rabbitmqctl, as the outage test)."""
    name, hold, inherent = "broker-restart", (1.0, 5.0), True

    def start(self, cluster, rng):
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=60)
        return "rabbit"

    def end(self, cluster, target):
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=60)


FAULTS = {fault.name: fault for fault in (
    Kill("leader"), Kill("follower"), Pause("leader"), Pause("follower"), DiskFull("leader"),
    DiskFull("follower"), Partition("leader"), Partition("follower"), BrokerRestart(),
    Kill("catalog"), Pause("catalog"), Wipe("catalog"))}

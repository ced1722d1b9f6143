"""Hosts of their own: network namespaces joined to this one by veth pairs, whose links can be cut.

``with Hosts(3, amqp_url) as hosts:`` makes namespaces ``bz<pid>n0``… (needs root), each on a
/30 of 10.201.0.0/16 with a ``socat`` on this side that forwards the link's port 5672 to the broker,
so the broker sees loopback clients (RabbitMQ lets guest in over loopback only). A process started
with ``hosts.command(i, argv)`` runs on host ``i`` and reaches the broker at ``hosts.amqp_url(i)``.
``cut(i)`` drops every packet on that link with iptables inside the namespace (no RST, no FIN: the
peers just stop hearing each other, as in a real partition); ``heal(i)`` lets them through again.
Leaving the block deletes the namespaces, their veths and rules with them, and stops the forwarders;
a later run also removes what a killed run left (the state of each run is in STATE_DIR).
Traffic only flows between these namespaces and loopback.
"""
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

SUBNETS = ipaddress.ip_network("10.201.0.0/16")
STATE_DIR = Path("/tmp/bazaar-netns")
PORT = 5672


def sh(*argv):
    """Run one command; raise with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def free_subnets(count):
    """``count`` /30 networks of SUBNETS that no interface here uses."""
    used = {ipaddress.ip_interface(word).network for line in sh("ip", "-o", "-4", "addr").splitlines()
            for word in line.split() if "/" in word and word[0].isdigit()}
    return [net for net in SUBNETS.subnets(new_prefix=30) if not any(net.overlaps(u) for u in used)][:count]


def remove(state):
    """Undo what one run made: stop its forwarders (by their pids) and delete its namespaces."""
    for pid in state.get("forwarders", []):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # each forwarder leads a process group: socat forks per connection
    for name in state.get("namespaces", []):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def running(pid):
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def remove_stale():
    """Remove what runs that no longer exist (killed, say) left behind."""
    for path in STATE_DIR.glob("*.json"):
        if not running(int(path.stem)):
            remove(json.loads(path.read_text()))
            path.unlink(missing_ok=True)


class Hosts:
    """``count`` network namespaces, each linked to this one and forwarding to the broker at ``amqp_url``."""

    def __init__(self, count, amqp_url):
        self.count, self.url = count, urlsplit(amqp_url)
        self.upstream = f"{self.url.hostname}:{self.url.port or PORT}"
        self.prefix = f"bz{os.getpid()}"
        self.state = {"namespaces": [], "forwarders": []}
        self.state_path = STATE_DIR / f"{os.getpid()}.json"
        self.addresses = []  # (this side, the host's side) per host

    def __enter__(self):
        STATE_DIR.mkdir(exist_ok=True)
        remove_stale()
        try:
            for i, net in enumerate(free_subnets(self.count)):
                self._make(i, net)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _make(self, i, net):
        name, outside, inside = self.name(i), f"{self.prefix}h{i}", f"{self.prefix}n{i}"
        ours, theirs = list(net.hosts())
        sh("ip", "netns", "add", name)
        self._save(namespaces=name)
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", name)
        sh("ip", "addr", "add", f"{ours}/30", "dev", outside)
        sh("ip", "link", "set", outside, "up")
        for command in (("ip", "addr", "add", f"{theirs}/30", "dev", inside), ("ip", "link", "set", inside, "up"),
                        ("ip", "link", "set", "lo", "up")):
            sh("ip", "netns", "exec", name, *command)
        forwarder = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{PORT},bind={ours},fork,reuseaddr", f"TCP:{self.upstream}"],
            start_new_session=True, stderr=subprocess.DEVNULL)
        self._save(forwarders=forwarder.pid)
        self.addresses.append((str(ours), str(theirs)))
        self._await_forwarder(i)

    def _await_forwarder(self, i, timeout=5):
        deadline = time.monotonic() + timeout
        while f"{self.addresses[i][0]}:{PORT}" not in sh("ss", "-ltnH"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the forwarder for host {i} did not listen")
            time.sleep(0.05)

    def _save(self, **added):
        for key, value in added.items():
            self.state[key].append(value)
        self.state_path.write_text(json.dumps(self.state))

    def name(self, i):
        return f"{self.prefix}n{i}"

    def command(self, i, argv):
        """``argv`` run inside host ``i``."""
        return ["ip", "netns", "exec", self.name(i), *argv]

    def amqp_url(self, i):
        """The broker's URL as host ``i`` reaches it, through its forwarder."""
        credentials = self.url.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{self.addresses[i][0]}:{PORT}" if credentials else f"{self.addresses[i][0]}:{PORT}"
        return self.url._replace(netloc=netloc).geturl()

    def _rules(self, i, action):
        device = f"{self.prefix}n{i}"
        for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
            sh("ip", "netns", "exec", self.name(i), "iptables", action, chain, direction, device, "-j", "DROP")

    def cut(self, i):
        """Drop every packet between host ``i`` and the rest."""
        self._rules(i, "-I")

    def heal(self, i):
        """Let host ``i``'s packets through again."""
        self._rules(i, "-D")

    def __exit__(self, *exc):
        remove(self.state)
        self.state_path.unlink(missing_ok=True)

"""Hosts of their own (bench.partition): a namespace reaches the broker, is cut off, healed, and cleaned up."""
import os
import shutil
import subprocess
import sys

import pytest

from bench.partition import STATE_DIR, Hosts, remove_stale, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not all(map(shutil.which, ("socat", "ip", "iptables"))),
                                reason="needs root (network namespaces), iproute2, iptables and socat")
CONNECT = "import pika, sys; pika.BlockingConnection(pika.URLParameters(sys.argv[1])).close()"


def connects(hosts, i, timeout=3):
    """Whether a process on host ``i`` opens an AMQP connection to the broker within ``timeout`` s."""
    try:
        return subprocess.run(hosts.command(i, [sys.executable, "-c", CONNECT, hosts.amqp_url(i)]),
                              capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_a_host_reaches_the_broker_until_it_is_cut_off_and_again_once_healed(amqp_url):
    with Hosts(2, amqp_url) as hosts:
        assert connects(hosts, 0) and connects(hosts, 1)
        hosts.cut(1)
        assert not connects(hosts, 1)
        assert connects(hosts, 0)  # only that host's link is cut
        hosts.heal(1)
        assert connects(hosts, 1)
        made = [hosts.name(0), hosts.name(1)]
        assert all(name in namespaces() for name in made)
    assert not any(name in namespaces() for name in made)
    assert not hosts.state_path.exists()


def test_what_a_killed_run_left_is_removed_by_the_next(amqp_url):
    """A run killed with -9 leaves its namespace and forwarder; its state file lets a later run remove them."""
    hosts = Hosts(1, amqp_url).__enter__()
    left = STATE_DIR / "999999999.json"  # a pid that no process has
    hosts.state_path.rename(left)
    forwarder = hosts.state["forwarders"][0]
    remove_stale()
    assert hosts.name(0) not in namespaces() and not left.exists()
    assert not running(forwarder)

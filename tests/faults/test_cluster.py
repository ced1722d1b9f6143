"""A three-node RabbitMQ cluster: trading goes on, exactly once, while the order leader's node is killed."""
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from test_faults import Load, check_invariants, wait_until_replicated

from bench.failover import wait_identical
from client.session import Session
from harness.stack import Stack
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ = Path("/usr/lib/rabbitmq/bin")
pytestmark = [
    pytest.mark.cluster, pytest.mark.slow,
    pytest.mark.skipif(not (RABBITMQ / "rabbitmq-server").exists(), reason="rabbitmq-server is not installed"),
]
RESUME_WITHIN = 5.0


class Cluster:
    """broker/cluster.sh with a name, ports and directory of this test's own."""

    def __init__(self, directory):
        self.dir = directory
        self.env = {**os.environ, "BAZAAR_CLUSTER_DIR": str(directory), "BAZAAR_CLUSTER_NAME": "bazaartest",
                    "BAZAAR_CLUSTER_PORT": "5691"}

    def run(self, command):
        result = subprocess.run([ROOT / "deploy" / "cluster.sh", command], env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def up(self):
        """Start the nodes that are not running; return the AMQP_URL."""
        return self.run("up").strip().rpartition("AMQP_URL=")[2]

    def kill(self, node):
        os.kill(int((self.dir / f"node{node}" / "pid").read_text()), signal.SIGKILL)

    def node_of(self, connection_name, exclude=()):
        """The node (1, 2 or 3, not one in ``exclude``) holding the most connections of that process.

        A killed node that is back gets new connections (an RpcClient's pool grows) while the
        ones that moved away during its outage stay where they are.
        """
        listing = subprocess.run(
            [RABBITMQ / "rabbitmqctl", "-n", "bazaartest1@localhost", "list_connections", "port",
             "client_properties", "--formatter", "json"],
            env={**self.env, "HOME": str(self.dir)}, capture_output=True, text=True, timeout=60, check=True)
        nodes = []
        for connection in json.loads(listing.stdout):
            name = next((v for k, _, v in connection["client_properties"] if k == "connection_name"), "")
            # A process names its connections <name> and <name>.<purpose> (its stream reader, its status).
            if f"{name}.".startswith(f"{connection_name}.") and connection["port"] - 5690 not in exclude:
                nodes.append(connection["port"] - 5690)
        assert nodes, f"no connection of {connection_name} on a node other than {list(exclude)}"
        return max(set(nodes), key=nodes.count)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    started = time.monotonic()
    cluster.amqp_url = cluster.up()
    print(f"\ncluster up in {time.monotonic() - started:.1f} s: {cluster.amqp_url}")
    yield cluster
    cluster.run("down")
    assert not cluster.dir.exists()


@pytest.fixture
def cluster_stack(cluster, tmp_path):
    settings = Settings(amqp_url=cluster.amqp_url, namespace=f"test-{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path / "data", rpc_timeout=3.0, queue_type="quorum")
    with Stack(settings, log_dir=tmp_path, replicas=3) as stack:
        yield stack


def seconds_until_a_trade_succeeds(url, timeout=30):
    """Place one trade, retrying its Idempotency-Key every 0.1 s; return the seconds until it is a 200."""
    session, key, started = Session(url, timeout=10), uuid.uuid4().hex, time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if session.post("/orders", {"name": "BoarCo", "quantity": 1, "type": "sell"},
                            headers={"Idempotency-Key": key})[0] == 200:
                break
        except OSError:
            session.close()
        time.sleep(0.1)
    session.close()
    return time.monotonic() - started


def test_trading_survives_killing_the_order_workers_node_then_another(cluster, cluster_stack):
    stack, rng, figures = cluster_stack, random.Random(), []
    with Load(stack.url, rng) as load:
        for _ in range(2):
            time.sleep(3)
            # The leader's connections carry its replica name (order-<i>), its RPC consumer's among them.
            leader = f"{stack.settings.namespace}.{stack.leader()}"
            node = cluster.node_of(leader, exclude=[f["node"] for f in figures])
            cluster.kill(node)
            resumed = seconds_until_a_trade_succeeds(stack.url)
            started = time.monotonic()
            cluster.up()
            figures.append({"node": node, "resumed_s": round(resumed, 2),
                            "node_back_s": round(time.monotonic() - started, 1)})
        time.sleep(2)
    replicating = wait_until_replicated(stack.settings, ("order-0", "catalog"))
    identical = wait_identical([stack.replica_dir(name) / "order_log.csv" for name in stack.replicas], 20)[0]
    assert set(stack.stop().values()) == {0}
    print(f"kills {figures}; trades attempted {len(load.attempted)}, succeeded {len(load.succeeded)}, "
          f"uncertain {len(load.uncertain)}; statuses {dict(load.statuses)}; converged {replicating:.1f} s "
          f"after the load")
    assert not set(load.statuses) & {400, 404, 422}, load.statuses
    assert identical, "the replicas' order logs differ"
    check_invariants(stack.settings, load.succeeded, replicas=("order-0", "catalog"))
    # A request sent on a channel RabbitMQ left stuck during the queue's leader election waits out
    # its RPC timeout (3 s here) before the frontend replaces the channel; others go through at once.
    assert all(f["resumed_s"] < RESUME_WITHIN for f in figures), figures

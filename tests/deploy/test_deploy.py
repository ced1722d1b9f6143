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
REPLICAS = [f"order-{i}" for i in range(3)]
APP_SERVICES = {"catalog": "catalog_worker", **dict.fromkeys(REPLICAS, "order_worker"), "frontend": "frontend"}


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


@pytest.mark.parametrize("service, user",
                         [("catalog", "catalog"), ("frontend", "frontend")] + [(r, "order") for r in REPLICAS])
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
    ("frontend", "read", "bazaar.events", True),
    ("catalog", "configure", "bazaar.order", False), ("catalog", "read", "bazaar.orders", False),
    ("catalog", "configure", "bazaar.catalog", True), ("catalog", "write", "bazaar.events", True),
    ("order", "configure", "bazaar.catalog", True), ("order", "read", "bazaar.catalog", False),
    ("order", "configure", "bazaar.orders.lock", True), ("order", "read", "bazaar.orders.lock", True),
    ("order", "configure", "bazaar.orders", True), ("order", "read", "bazaar.orders", True),
])
def test_each_service_has_the_least_permissions(compose, user, kind, name, allowed):
    permission, = [p for p in definitions(compose)["permissions"] if p["user"] == user]
    assert bool(re.search(permission[kind], name)) == allowed


def test_the_broker_ports_are_published_on_loopback_by_default(services):
    ports = services["rabbitmq"]["ports"]
    assert ports and all(port.startswith("${RABBITMQ_BIND_ADDRESS:-127.0.0.1}:") for port in ports)


def test_frontend_listens_on_all_interfaces_and_publishes_8000(services):
    frontend = services["frontend"]
    assert frontend["environment"]["FRONTEND_HOST"] == "0.0.0.0"
    assert any(str(port).endswith(":8000") for port in frontend["ports"])


@pytest.mark.parametrize("service, volume", [("catalog", "catalog-data")] + [(r, f"{r}-data") for r in REPLICAS])
def test_worker_data_lives_in_a_named_volume(compose, services, service, volume):
    assert volume in compose["volumes"]
    data_dir = services[service]["environment"]["DATA_DIR"]
    assert f"{volume}:{data_dir}" in services[service]["volumes"]


def test_order_replicas_have_distinct_ids(services):
    assert [services[r]["environment"]["REPLICA_ID"] for r in REPLICAS] == ["0", "1", "2"]


def test_procfile_runs_the_services_and_three_order_replicas():
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip())
    assert {name: cmd.strip() for name, cmd in entries.items()} == {
        # exec, so honcho signals and reports the service itself rather than a shell around it;
        # the workers share one machine, so each serves its metrics on a port of its own.
        "catalog": "exec env METRICS_PORT=9101 python -m catalog_worker",
        **{r: f"exec env REPLICA_ID={r[-1]} DATA_DIR=data/{r} METRICS_PORT={9102 + int(r[-1])} python -m order_worker"
           for r in REPLICAS},
        "frontend": "exec python -m frontend",
    }


@pytest.mark.parametrize("service, probe", [
    ("catalog", ":9100/metrics"), ("order-0", ":9100/metrics"), ("frontend", ":8000/healthz")])
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

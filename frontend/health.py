"""Probes and metrics for operators: /healthz, /readyz and /metrics."""
import prometheus_client
from flask import Blueprint, current_app

from broker import RpcError

bp = Blueprint("health", __name__)
WORKERS = ("catalog", "order")
# Short, so that a probe hears of a stuck worker well within its own timeout (1 s by default).
PING_TIMEOUT = 0.4


@bp.get("/healthz")
def healthz():
    """The process is alive and serving HTTP; nothing else is checked."""
    return {"data": {"status": "ok"}}


@bp.get("/readyz")
def readyz():
    """The broker is reachable and every worker answers a ping in time; else 503 naming which do not."""
    failed = []
    for service in WORKERS:
        try:
            current_app.extensions["rpc"].call(service, "ping", {}, timeout=PING_TIMEOUT)
        except RpcError as exc:
            failed.append(f"{service}: {exc.message}")
    if failed:
        return RpcError(503, "not ready: " + "; ".join(failed)).envelope(), 503
    return {"data": {service: "ok" for service in WORKERS}}


@bp.get("/metrics")
def metrics():
    return current_app.response_class(prometheus_client.generate_latest(),
                                      mimetype=prometheus_client.CONTENT_TYPE_LATEST)

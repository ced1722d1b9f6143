"""Probes: /healthz needs nothing but the process, /readyz pings the broker and each worker."""
from dataclasses import replace

from broker import RpcClient
from broker.events import Subscriber
from frontend import create_app


def test_healthz(api):
    assert api.get("/healthz")[:2] == (200, {"data": {"status": "ok"}})


def test_readyz_when_everything_answers(api):
    assert api.get("/readyz")[:2] == (200, {"data": {"catalog": "ok", "order": "ok"}})


def test_readyz_names_the_worker_that_does_not_answer(stack, api):
    stack.stop("order")
    status, body, _ = api.get("/readyz")
    assert (status, body["error"]["code"]) == (503, 503)
    assert body["error"]["message"].startswith("not ready: order: ")
    assert "catalog" not in body["error"]["message"]
    assert api.get("/healthz")[0] == 200


def test_without_a_broker_healthz_passes_and_readyz_says_why(settings):
    unreachable = replace(settings, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F")
    app = create_app(unreachable, RpcClient(unreachable, "frontend"), Subscriber(unreachable, "frontend-events"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    message = response.json["error"]["message"]
    assert "catalog: message broker unavailable" in message and "order: message broker unavailable" in message

"""Without a broker: /healthz passes, and every answer that needs one is a short, stable 503."""
from dataclasses import replace

from broker import RpcClient
from broker.events import Subscriber
from frontend import create_app

CLOSED_PORT_URL = "amqp://guest:guest@127.0.0.1:1/%2F"
BROKER_DOWN = {"error": {"code": 503, "message": "message broker unavailable"}}


def logged_by_the_client(caplog):
    """What RpcClient logged (pika logs the failure in its own words too)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "broker.client")


def test_unreachable_broker_body_is_stable_and_the_detail_is_logged(settings, caplog):
    unreachable = replace(settings, amqp_url=CLOSED_PORT_URL)
    app = create_app(unreachable, RpcClient(unreachable, "frontend"), Subscriber(unreachable, "frontend-events"))
    response = app.test_client().get("/stocks/GameStart")
    assert (response.status_code, response.get_json()) == (503, BROKER_DOWN)
    assert "ConnectionRefusedError" in logged_by_the_client(caplog)


def test_without_a_broker_healthz_passes_and_readyz_says_why(settings):
    unreachable = replace(settings, amqp_url=CLOSED_PORT_URL)
    app = create_app(unreachable, RpcClient(unreachable, "frontend"), Subscriber(unreachable, "frontend-events"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    message = response.json["error"]["message"]
    assert "catalog: message broker unavailable" in message and "order: message broker unavailable" in message

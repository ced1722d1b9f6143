"""Error bodies are short and stable: exception details go to the log, never to the client."""
import logging

import pytest
from pika.exceptions import StreamLostError

from broker import RpcClient, RpcError
from broker.client import _Link

CLOSED_PORT_URL = "amqp://guest:guest@127.0.0.1:1/%2F"
BROKER_DOWN = {"error": {"code": 503, "message": "message broker unavailable"}}


def logged_by_the_client(caplog):
    """What RpcClient logged (pika logs the failure in its own words too)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "broker.client")


def test_lost_connection_body_is_stable_and_the_detail_is_logged(settings, caplog, monkeypatch):
    def lose_connection(*_):
        raise StreamLostError("Stream connection lost: ConnectionResetError(104, 'Connection reset by peer')")

    monkeypatch.setattr(_Link, "call", lose_connection)
    rpc = RpcClient(settings, "tester")
    try:
        with pytest.raises(RpcError) as error, caplog.at_level(logging.WARNING):
            rpc.call("catalog", "lookup", {"name": "GameStart"})
    finally:
        rpc.stop()
    assert error.value.envelope() == BROKER_DOWN
    assert "ConnectionResetError(104" in logged_by_the_client(caplog)

"""Queue types against the real broker: quorum dead-lettering and TTL, a type change, several brokers."""
import threading
from dataclasses import replace

import pytest

from broker import RpcClient, RpcError, RpcServer
from broker.connection import QueueMismatch, connect, declare_queue

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2F"


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_an_expired_request_is_dead_lettered(settings, admin, queue_type):
    settings = replace(settings, queue_type=queue_type)
    declare_queue(admin.channel, settings, "idle")  # no consumer: the request waits out its expiration
    client = RpcClient(settings, "tester")
    with pytest.raises(RpcError) as error:
        client.call("idle", "lookup", {"name": "FishCo"}, timeout=0.3)
    client.stop()
    assert error.value.code == 504
    props, _ = admin.get(settings.dead_letter_queue)
    assert (props.headers["x-death"][0]["queue"], props.headers["x-death"][0]["reason"]) == (
        settings.queue("idle"), "expired")
    admin.channel.queue_delete(settings.queue("idle"))


def test_a_queue_of_another_type_stops_the_worker_with_a_clear_error(settings, admin):
    declare_queue(admin.channel, replace(settings, queue_type="classic"), "echo")
    server = RpcServer(replace(settings, queue_type="quorum"), "echo", {}, threads=2)
    failed = threading.Event()
    server.start(on_failure=lambda _: failed.set())
    assert failed.wait(timeout=20)
    server.stop()
    assert isinstance(server.failure, QueueMismatch) and "delete it" in str(server.failure)
    admin.channel.queue_delete(settings.queue("echo"))


def test_connect_skips_a_broker_that_is_down(settings):
    listed = replace(settings, amqp_url=f"{UNREACHABLE}, {settings.amqp_url}")
    connection = connect(listed, "tester", threading.Event(), patience=5)
    assert connection.is_open
    connection.close()

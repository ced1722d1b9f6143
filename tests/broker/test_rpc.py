"""The RPC layer against the real broker: concurrency, errors, timeouts and poison messages."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from broker import RpcClient, RpcError, RpcServer
from runtime.logs import request_id


def echo(args):
    if args.get("sleep"):
        time.sleep(args["sleep"])
    return args


def fail(args):
    raise ValueError("boom")


def refuse(args):
    raise RpcError(409, "no way")


@pytest.fixture
def server(settings, admin):
    """An RpcServer for the service "echo", running in this process."""
    server = RpcServer(settings, "echo", {"echo": echo, "fail": fail, "refuse": refuse}, threads=2)
    server.start()
    admin.wait_for_consumers("echo")
    yield server
    server.stop()
    admin.channel.queue_delete(settings.queue("echo"))


@pytest.fixture
def rpc(settings):
    client = RpcClient(settings, "tester")
    yield client
    client.stop()


def test_call_returns_the_reply(server, rpc):
    assert rpc.call("echo", "echo", {"n": 1}) == {"n": 1}


def test_every_server_answers_ping(server, rpc):
    assert rpc.call("echo", "ping", {}) == {"service": "echo"}


def test_many_threads_share_one_client(server, rpc):
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: rpc.call("echo", "echo", {"n": n}), range(400)))
    assert replies == [{"n": n} for n in range(400)]
    assert len(rpc._idle) <= 16


def test_sequential_calls_reuse_one_connection(server, rpc):
    for n in range(20):
        rpc.call("echo", "echo", {"n": n})
    assert len(rpc._idle) == 1


def test_error_replies_keep_their_code(server, rpc):
    with pytest.raises(RpcError) as error:
        rpc.call("echo", "refuse", {})
    assert (error.value.code, error.value.message) == (409, "no way")


def test_a_handler_exception_is_a_500_and_the_worker_keeps_running(server, rpc):
    with pytest.raises(RpcError) as error:
        rpc.call("echo", "fail", {})
    assert error.value.code == 500
    assert rpc.call("echo", "echo", {"still": "alive"}) == {"still": "alive"}


def test_timeout_is_a_504_and_the_late_reply_is_not_mistaken(server, rpc):
    started = time.monotonic()
    with pytest.raises(RpcError) as error:
        rpc.call("echo", "echo", {"sleep": 0.6}, timeout=0.3)
    assert error.value.code == 504 and time.monotonic() - started < 0.5
    assert error.value.message == "no reply from the echo service in time"
    time.sleep(0.5)
    assert rpc.call("echo", "echo", {"n": 2}) == {"n": 2}


def test_a_connection_whose_call_timed_out_is_replaced(server, rpc):
    rpc.call("echo", "echo", {})
    stale = rpc._idle[0]
    with pytest.raises(RpcError):
        rpc.call("echo", "echo", {"sleep": 0.6}, timeout=0.3)
    # Its channel may be what is stuck (a quorum queue's leader election, tests/test_cluster.py).
    assert rpc._idle == [] and not stale.connection.is_open
    assert rpc.call("echo", "echo", {"n": 3}) == {"n": 3}
    assert rpc._idle[0] is not stale


def test_no_worker_queue_is_a_503(settings, rpc):
    with pytest.raises(RpcError) as error:
        rpc.call("nobody", "echo", {})
    assert (error.value.code, error.value.message) == (503, "the nobody service is unavailable")


def test_unreachable_broker_is_a_quick_503(settings):
    client = RpcClient(settings.__class__(amqp_url="amqp://guest:guest@127.0.0.1:1/%2F"), "tester")
    started = time.monotonic()
    with pytest.raises(RpcError) as error:
        client.call("echo", "echo", {})
    assert error.value.code == 503 and time.monotonic() - started < 2


def test_requests_carry_legible_properties(settings, rpc, admin):
    admin.channel.queue_declare(settings.queue("inspect"))

    def call():
        request_id.set("rid-7")
        rpc.call("inspect", "lookup", {"name": "FishCo"}, timeout=2)

    with ThreadPoolExecutor(1) as pool:
        unanswered = pool.submit(call)
        props, body = admin.get(settings.queue("inspect"))
        with pytest.raises(RpcError):
            unanswered.result()
    admin.channel.queue_delete(settings.queue("inspect"))
    assert json.loads(body) == {"name": "FishCo"}
    assert (props.content_type, props.app_id, props.type) == ("application/json", "tester", "lookup")
    assert props.headers["request_id"] == "rid-7" and props.timestamp > 0
    assert props.correlation_id and props.reply_to.startswith("amq.rabbitmq.reply-to.") and props.expiration == "2000"


@pytest.mark.parametrize("body, props, reply", [
    (b"not json", {"type": "echo"}, 400),
    (b"[1, 2]", {"type": "echo"}, 400),
    (b"{}", {"type": "no_such_method"}, 400),
    (b"{}", {"type": "echo", "reply_to": None}, None),
])
def test_poison_messages_are_dead_lettered(server, settings, rpc, admin, body, props, reply):
    replies = admin.channel.queue_declare("", exclusive=True).method.queue
    props = pika.BasicProperties(**{"reply_to": replies, "correlation_id": "c1", **props})
    admin.channel.basic_publish("", settings.queue("echo"), body, props)
    assert admin.get(settings.dead_letter_queue)[1] == body
    if reply:
        assert json.loads(admin.get(replies)[1])["error"]["code"] == reply
    assert rpc.call("echo", "echo", {"ok": 1}) == {"ok": 1}


class RecordingChannel:
    def __init__(self):
        self.calls = []

    def basic_publish(self, exchange, routing_key, body, properties=None):
        self.calls.append(("publish", routing_key))

    def basic_ack(self, delivery_tag):
        self.calls.append(("ack", delivery_tag))


@pytest.mark.parametrize("redelivered, order", [
    (False, [("publish", "caller"), ("ack", 7)]),  # a kill loses no reply
    (True, [("ack", 7), ("publish", "caller")]),  # an orphan's reply crashes once
])
def test_a_reply_goes_before_its_ack_unless_the_request_was_redelivered(redelivered, order):
    channel = RecordingChannel()
    delivery = pika.spec.Basic.Deliver(delivery_tag=7, redelivered=redelivered)
    RpcServer._finish(channel, delivery, ("", "caller", b"{}", None))
    assert channel.calls == order

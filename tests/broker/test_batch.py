"""Batched calls and quick handlers against the real broker: each caller gets its own reply."""
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from broker import RpcClient, RpcError, RpcServer, tracing
from broker.batch import Batcher
from harness.stack import wait_until


class Slow:
    """Handlers that hold their replies until ``release``: meanwhile the calls made pile up."""

    def __init__(self):
        self.gate, self.taken, self.declined = threading.Event(), [], 0

    def echo(self, args):  # on a handler thread: what a quick handler declined
        if args.get("refuse"):
            raise RpcError(409, "no way")
        return args

    def echo_now(self, args):  # on the consumer thread: never blocks
        if args.get("decline"):
            self.declined += 1
            return None
        if args.get("refuse"):
            raise RpcError(409, "no way")
        reply: Future = Future()
        self.taken.append(reply)
        threading.Thread(target=lambda: (self.gate.wait(10), reply.set_result(args)), daemon=True).start()
        return reply

    def release(self):
        self.gate.set()


@pytest.fixture
def handlers():
    return Slow()


@pytest.fixture
def server(settings, admin, handlers):
    server = RpcServer(settings, "echo", {"echo": handlers.echo}, threads=2, single_active=True,
                       quick={"echo": handlers.echo_now})
    server.start()
    admin.wait_for_consumers("echo")
    yield server
    handlers.release()
    server.stop()
    admin.channel.queue_delete(settings.queue("echo"))


@pytest.fixture
def batcher(settings):
    rpc = RpcClient(settings, "tester")
    batcher = Batcher(settings, rpc, {"echo": {"echo"}}, "tester")
    rpc.start()
    batcher.start()
    deadline = time.monotonic() + 5
    while batcher._link is None:
        assert time.monotonic() < deadline, "the batcher did not connect"
        time.sleep(0.02)
    yield batcher
    batcher.stop()
    rpc.stop()


def handled(method):
    labels = {"service": "echo", "method": method, "status": "200"}
    return REGISTRY.get_sample_value("bazaar_rpc_messages_handled_total", labels) or 0


def test_calls_made_at_once_go_together_and_each_caller_gets_its_own_reply(server, batcher, handlers):
    before = handled("batch"), handled("echo")
    with ThreadPoolExecutor(12) as pool:
        calls = [pool.submit(batcher.call, "echo", "echo", {"n": n}) for n in range(12)]
        time.sleep(0.5)  # the first call, alone, went at once; the rest queued behind it, in batches
        handlers.release()
        assert [call.result(timeout=5) for call in calls] == [{"n": n} for n in range(12)]
    assert len(handlers.taken) == 12
    batches, alone = handled("batch") - before[0], handled("echo") - before[1]
    assert alone >= 1 and 1 <= batches <= 11 - alone  # the first alone, the others in fewer requests than calls


def test_calls_made_while_a_batch_is_in_flight_wait_for_its_reply_then_go_together(server, batcher, handlers):
    before = handled("batch")
    with ThreadPoolExecutor(12) as pool:
        calls = [pool.submit(batcher.call, "echo", "echo", {"n": 0})]  # alone, held by the gate
        wait_until(lambda: len(handlers.taken) == 1, 5, "the lone call taken")
        calls.append(pool.submit(batcher.call, "echo", "echo", {"n": 1}))  # the first batch, held too
        wait_until(lambda: len(handlers.taken) == 2, 5, "the first batch taken")
        calls += [pool.submit(batcher.call, "echo", "echo", {"n": n}) for n in range(2, 12)]
        time.sleep(0.3)
        assert len(handlers.taken) == 2  # queued behind the batch in flight, not sent
        handlers.release()
        assert [call.result(timeout=5) for call in calls] == [{"n": n} for n in range(12)]
    assert handled("batch") - before == 2  # the ten went in one request, once the first batch was answered


def test_an_error_reaches_only_its_own_caller_and_a_declined_batch_is_answered_by_a_handler_thread(
        server, batcher, handlers):
    handlers.release()
    args = [{"n": 0}, {"n": 1, "refuse": True}, {"n": 2, "decline": True}, {"n": 3}]
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(batcher.call, "echo", "echo", a) for a in args]
        outcomes = []
        for call in calls:
            try:
                outcomes.append(call.result(timeout=5))
            except RpcError as exc:
                outcomes.append(exc.code)
    assert outcomes == [{"n": 0}, 409, {"n": 2, "decline": True}, {"n": 3}]
    assert handlers.declined >= 1


def test_a_malformed_batch_is_refused_with_a_400(server, settings, handlers):
    rpc = RpcClient(settings, "tester")
    try:
        with pytest.raises(RpcError) as refused:
            rpc.call("echo", "batch", {"method": "echo", "calls": [1, 2]})
        assert refused.value.code == 400
        with pytest.raises(RpcError, match="a batch needs"):
            rpc.call("echo", "batch", {"method": "batch", "calls": []})
    finally:
        rpc.stop()


def test_a_batch_for_a_service_without_a_worker_is_a_503(settings, batcher):
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(batcher.call, "echo", "echo", {"n": n}, 2) for n in range(4)]
        codes = set()
        for call in calls:
            with pytest.raises(RpcError) as failed:
                call.result(timeout=5)
            codes.add(failed.value.code)
    assert codes == {503}


def test_a_batch_never_answered_is_a_504_and_the_next_goes_on_a_new_connection(server, batcher, handlers):
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(batcher.call, "echo", "echo", {"n": n}, 1) for n in range(3)]  # held by the gate
        first_link = batcher._link
        for call in calls:
            with pytest.raises(RpcError) as late:
                call.result(timeout=5)
            assert late.value.code == 504
    deadline = time.monotonic() + 5
    while batcher._link in (first_link, None):  # replaced, as RpcClient replaces a link after a 504
        assert time.monotonic() < deadline, "the batcher kept its connection"
        time.sleep(0.05)
    handlers.release()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda n: batcher.call("echo", "echo", {"n": n}), range(2))) == [{"n": 0}, {"n": 1}]


def test_a_call_made_as_the_broker_closes_the_connection_is_a_503(server, batcher, handlers, closed_connection):
    with ThreadPoolExecutor(1) as pool:
        alone = pool.submit(batcher.call, "echo", "echo", {"n": 0})  # held by the gate: the next call is batched
        wait_until(lambda: len(handlers.taken) == 1, 5, "the lone call taken")
        batcher._link = closed_connection, batcher._link[1]  # closed by the broker; its thread has not noticed
        with pytest.raises(RpcError) as refused:
            batcher.call("echo", "echo", {"n": 1})
        assert refused.value.code == 503 and refused.value.message == "message broker unavailable"
        assert not batcher._queued.get(("echo", "echo"))  # nothing left for the next batch to carry
        handlers.release()
        assert alone.result(timeout=5) == {"n": 0}


def test_a_traced_request_takes_the_quick_path_in_a_span_that_lasts_until_its_reply(
        server, settings, handlers, monkeypatch):
    spans, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))  # tracing on, in this process only
    rpc = RpcClient(settings, "tester")
    try:
        with ThreadPoolExecutor(1) as pool:
            def traced_call():
                with provider.get_tracer("test").start_as_current_span("caller"):
                    return rpc.call("echo", "echo", {"n": 1})
            call = pool.submit(traced_call)
            wait_until(lambda: len(handlers.taken) == 1, 5, "the traced call taken by the quick handler")
            assert spans.get_finished_spans() == ()  # the server's span lasts until the reply
            handlers.release()
            assert call.result(timeout=5) == {"n": 1}
    finally:
        rpc.stop()
    by_kind = {span.kind: span for span in spans.get_finished_spans()}
    server_span, client_span = by_kind[tracing.SpanKind.SERVER], by_kind[tracing.SpanKind.CLIENT]
    assert handlers.declined == 0 and len(handlers.taken) == 1  # no handler thread took it
    assert server_span.name == "echo/echo" and server_span.attributes["rpc.response.status_code"] == 200
    assert server_span.parent.span_id == client_span.context.span_id
    assert server_span.end_time <= client_span.end_time

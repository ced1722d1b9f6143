"""Tracing: one trade's spans across the frontend, the order replicas and the catalog form one tree."""
import time
from concurrent.futures import ThreadPoolExecutor

from bench.traces import read_spans, tree
from broker import tracing
from client.session import Session
from harness.stack import Stack
from runtime.settings import Settings

TRADE = {"name": "GameStart", "quantity": 1, "type": "buy"}


def test_tracing_is_off_without_an_exporter():
    tracing.setup(Settings(), "test")
    assert not tracing.enabled()
    assert tracing.inject({"request_id": "r"}) == {"request_id": "r"}
    headers = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    with tracing.span("nothing", tracing.SpanKind.SERVER, "a-queue", headers) as span:
        assert not span.is_recording()
    assert not tracing.traces(client_traced=True)


def _every_request_traced(traces):
    """A stack's environment that writes a file of spans per process under ``traces``, of every request."""
    return {"TRACE_DIR": str(traces), "TRACE_SAMPLE_RATIO": "1"}


def _logged(stack, orders):
    """Whether every replica, order and catalog, has logged ``orders`` orders (after its header)."""
    paths = [stack.replica_dir(name) / "order_log.csv" for name in stack.replicas] + [
        stack.settings.data_dir / "catalog" / "order_log.csv"]
    return all(path.exists() and len(path.read_text().splitlines()) > orders for path in paths)


def _wait_until_applied(stack, orders):
    deadline = time.monotonic() + 10
    while not _logged(stack, orders):  # followers and the catalog apply an entry a round later
        assert time.monotonic() < deadline, "a replica did not apply the trades"
        time.sleep(0.05)


def _shape(rows):
    """A trade's trace as sorted ``(depth, name, kind, service)``, replicas named by their service."""
    return sorted((depth, s.name, s.kind, s.service.split("-")[0]) for depth, s in rows)


def _trade_shape(stream):
    """The spans of one trade with three order replicas and one catalog replica."""
    return sorted([
        (0, "POST /orders", "server", "frontend"),
        (1, "order/trade", "client", "frontend"),
        (2, "order/trade", "server", "order"),
        (3, f"{stream} publish", "producer", "order"),
        *[(4, f"{stream} receive", "consumer", "order")] * 3,
        (4, f"{stream} receive", "consumer", "catalog"),
    ])


def test_one_trade_is_one_trace_across_processes(settings, tmp_path):
    traces = tmp_path / "traces"
    with Stack(settings, env=_every_request_traced(traces), replicas=3, log_dir=tmp_path) as stack:
        api = Session(stack.url)
        assert api.post("/orders", TRADE)[0] == 200  # the first trade also makes its leader catch up
        assert api.post("/orders", TRADE, headers={"X-Request-ID": "traced-trade"})[0] == 200
        api.close()
        _wait_until_applied(stack, 2)
        assert set(stack.stop().values()) == {0}  # they flush their spans on the way out

    spans = read_spans(traces)
    root = next(s for s in spans if s.attributes.get("bazaar.request_id") == "traced-trade" and not s.parent_id)
    rows = tree(spans, root.trace_id)
    assert all(s.parent_id in {r.span_id for _, r in rows} for _, s in rows[1:]), "a span lost its parent"
    stream = settings.queue("orders")
    assert _shape(rows) == _trade_shape(stream), "\n".join(map(str, _shape(rows)))
    by_name = {(s.name, s.kind): s for _, s in rows}
    leader = by_name["order/trade", "server"].service
    assert by_name[f"{stream} publish", "producer"].service == leader
    # Every replica applied the order, the leader before it answered.
    receivers = [s for _, s in rows if s.name == f"{stream} receive"]
    assert {s.service for s in receivers} == {"order-0", "order-1", "order-2", "catalog-0"}
    assert next(s for s in receivers if s.service == leader).end_ns <= by_name["order/trade", "server"].end_ns
    # A span in a process lies within its parent; across processes the clocks are the same machine's.
    for _, span in rows[1:]:
        parent = next(s for _, s in rows if s.span_id == span.parent_id)
        assert span.start_ns >= parent.start_ns
        if span.kind in ("client", "producer") or span.name.startswith("catalog/"):
            assert span.end_ns <= parent.end_ns
    assert root.attributes["http.response.status_code"] == "200"  # OTLP JSON writes integers as strings
    assert by_name["order/trade", "server"].attributes["rpc.response.status_code"] == "200"


def test_spans_only_for_sampled_requests_and_traced_clients(settings, tmp_path):
    traces = tmp_path / "traces"
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with Stack(settings, env={"TRACE_DIR": str(traces), "TRACE_SAMPLE_RATIO": "0"}, log_dir=tmp_path) as stack:
        api = Session(stack.url)
        assert api.get("/stocks/GameStart")[0] == 200  # not sampled: no span anywhere
        assert api.post("/orders", TRADE)[0] == 200
        headers = {"traceparent": f"00-{client_trace}-{client_span}-01"}  # the client's own trace
        assert api.get("/stocks/BoarCo", headers=headers)[0] == 200
        api.close()
        assert set(stack.stop().values()) == {0}
    spans = read_spans(traces)
    assert {s.trace_id for s in spans} == {client_trace}
    rows = tree(spans, client_trace)
    assert [(d, s.name, s.service) for d, s in rows] == [
        (0, "GET /stocks/<name>", "frontend"), (1, "catalog/lookup", "frontend"), (2, "catalog/lookup", "catalog-0")]
    assert rows[0][1].parent_id == client_span


def test_a_traced_trade_that_rides_a_batch_has_the_spans_of_one_sent_alone(settings, tmp_path):
    traces = tmp_path / "traces"
    with Stack(settings, env=_every_request_traced(traces), replicas=3, log_dir=tmp_path) as stack:
        api = Session(stack.url)
        assert api.post("/orders", TRADE)[0] == 200  # the leader catches up first
        with ThreadPoolExecutor(8) as pool:  # trades at once: the frontend batches those that overlap
            assert set(pool.map(lambda _: Session(stack.url).post("/orders", TRADE)[0], range(40))) == {200}
        api.close()
        _wait_until_applied(stack, 41)
        assert set(stack.stop().values()) == {0}

    spans = read_spans(traces)
    batched = [s for s in spans if s.attributes.get("bazaar.batched")]
    assert batched, "no trade rode a batch"
    stream = settings.queue("orders")
    for client in batched:
        rows = tree(spans, client.trace_id)
        assert _shape(rows) == _trade_shape(stream)
        (_, server), (_, producer) = rows[2], rows[3]
        # The server span lasts until the trade's reply, though a quick handler answered it later.
        assert client.start_ns <= server.start_ns <= producer.start_ns <= producer.end_ns <= server.end_ns
        assert server.end_ns <= client.end_ns and server.attributes["rpc.response.status_code"] == "200"
        # Its batch went out after the call began and was answered after the leader settled it.
        sent, replied = (int(client.attributes[f"bazaar.batch.{edge}_ns"]) for edge in ("sent", "replied"))
        assert client.start_ns <= sent <= server.start_ns and server.end_ns <= replied <= client.end_ns

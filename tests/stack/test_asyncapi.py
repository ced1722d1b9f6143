"""The message contract (frontend/asyncapi.json, served at /asyncapi.json) against the AsyncAPI 3.0
schema, and every message a live stack sends against the contract.

The schema is the official one, vendored: tests/stack/schemas/asyncapi-3.0.0.json is
``schemas/3.0.0-without-$id.json`` of the npm package @asyncapi/specs 6.11.1
(github.com/asyncapi/spec-json-schemas, Apache-2.0). Live messages are captured with RabbitMQ's
firehose tracer (``rabbitmqctl trace_on``) on a virtual host of the test's own, so nothing else on
the broker is traced: every request and reply, event and stream entry any service publishes.
"""
import copy
import datetime
import json
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jsonschema
import pika
import pytest
import referencing

from catalog_worker.service import CatalogService
from client.session import Session
from harness.stack import Stack
from order_worker.service import OrderService
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "frontend" / "asyncapi.json").read_text())
ASYNCAPI_SCHEMA = json.loads((Path(__file__).with_name("schemas") / "asyncapi-3.0.0.json").read_text())
DOC_URI = "urn:stock-bazaar:asyncapi"
REGISTRY = referencing.Registry().with_resource(DOC_URI, referencing.jsonschema.DRAFT7.create_resource(DOC))
TRADE = {"name": "GameStart", "quantity": 2, "type": "buy"}
# Messages the document lists for readers only: streams written before adaptive batching hold them.
READ_ONLY = {"/channels/orderStream/messages/orderEntry"}


def test_document_is_valid_asyncapi_3():
    jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).validate(DOC)
    broken = copy.deepcopy(DOC)
    broken["operations"]["catalogLookup"]["action"] = "publish"  # AsyncAPI 2's word, not 3's
    assert not jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).is_valid(broken)


def test_every_reference_resolves():
    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    resolver = REGISTRY.resolver(DOC_URI)
    for ref in refs(DOC):
        resolver.lookup(ref)  # raises for a reference to nothing


def test_every_method_is_documented():
    catalog = set(CatalogService(None, Settings()).handlers) | {"ping"}
    order = set(OrderService(None, Settings()).handlers) | {"ping", "batch"}  # the frontend batches trades
    assert set(DOC["channels"]["catalogRequests"]["messages"]) == catalog
    assert set(DOC["channels"]["orderRequests"]["messages"]) == order
    replied = {op["title"] for op in DOC["operations"].values() if "reply" in op}
    assert replied == {f"catalog.{m}" for m in catalog} | {f"order.{m}" for m in order}


def _validate(path, instance):
    """Errors of ``instance`` against the schema at ``path`` (a JSON pointer) in the document."""
    validator = jsonschema.Draft7Validator({"$ref": f"{DOC_URI}#{path}"}, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _message_errors(pointer, properties, body):
    """Errors of a message (its AMQP properties and JSON body) against the message at ``pointer``."""
    message = REGISTRY.resolver(DOC_URI).lookup(f"#{pointer}").contents
    if "$ref" in message:
        pointer = message["$ref"][1:]
    try:
        payload = json.loads(body)
    except ValueError as exc:
        payload = f"<not JSON: {exc}>"
    errors = [f"headers {e}" for e in _validate(f"{pointer}/headers", properties)]
    errors += [f"payload {e}" for e in _validate(f"{pointer}/payload", payload)]
    return errors


def _plain(value):
    """An AMQP value as JSON has it: timestamps as seconds, strings as text."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, bytes):
        return value.decode()
    return value


def _properties(props):
    return _plain({key: value for key, value in vars(props).items() if value is not None})


class Vhost:
    """A RabbitMQ virtual host of the test's own, with the firehose tracer on."""

    def __init__(self, amqp_url):
        self.name = f"contract-{uuid.uuid4().hex[:8]}"
        parts = urlsplit(amqp_url)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
        for command in (["add_vhost", self.name], ["set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"],
                        ["trace_on", "-p", self.name]):
            subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True)

    def delete(self):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], check=True, capture_output=True)


@pytest.fixture
def vhost(amqp_url):
    if not shutil.which("rabbitmqctl") or urlsplit(amqp_url).hostname not in ("localhost", "127.0.0.1"):
        pytest.skip("capturing messages needs rabbitmqctl on the broker's host (the firehose tracer)")
    vhost = Vhost(amqp_url)
    yield vhost
    vhost.delete()


class Capture:
    """Every message published in the vhost (through the firehose), and the order stream as replicas read it."""

    def __init__(self, settings):
        self.settings = settings
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, "amq.rabbitmq.trace", "publish.#")
        self.published = []  # (exchange, routing key, properties, body)

    def drain(self):
        while (message := self.channel.basic_get(self.queue, auto_ack=True))[0] is not None:
            _, props, body = message
            trace = props.headers
            self.published.append((trace["exchange_name"], trace["routing_keys"][0], _plain(trace["properties"]), body))
        return self.published

    def wait_for(self, predicate, what, timeout=15):
        deadline = time.monotonic() + timeout
        while not any(predicate(*message) for message in self.drain()):
            assert time.monotonic() < deadline, f"never captured {what}"
            time.sleep(0.1)

    def stream(self):
        """Every entry of the order stream from its start, as a replica receives it."""
        entries = []
        channel = self.connection.channel()
        channel.basic_qos(prefetch_count=100)
        channel.basic_consume(self.settings.queue("orders"), lambda ch, delivery, props, body: (
            entries.append((_properties(props), body)), ch.basic_ack(delivery.delivery_tag)),
            arguments={"x-stream-offset": "first"})
        before = -1
        while len(entries) != before:
            before = len(entries)
            self.connection.process_data_events(time_limit=1)
        channel.close()
        return entries

    def dead_letters(self):
        letters = []
        while (message := self.channel.basic_get(self.settings.dead_letter_queue, auto_ack=True))[0] is not None:
            letters.append((_properties(message[1]), message[2]))
        return letters


def _drive(stack, admin_channel, settings):
    """Make every kind of message go by: each RPC method, errors, events, stream entries, dead letters."""
    api = Session(stack.url)
    assert api.get("/readyz")[0] == 200  # ping, both services
    assert api.get("/stocks")[0] == 200  # list
    assert api.get("/stocks/NoSuchCo")[0] == 404  # lookup, an error reply
    assert api.post("/orders", TRADE, headers={"Idempotency-Key": "contract-1"})[0] == 200  # an orders entry, an event
    assert api.post("/orders", TRADE, headers={"Idempotency-Key": "contract-1"})[0] == 200  # a retry: the event again
    assert api.get("/stocks/GameStart")[0] == 200  # lookup with min_seq: the trade evicted it from the cache
    assert api.get("/orders/0")[0] == 200  # query
    assert api.post("/orders", {**TRADE, "quantity": 10 ** 6}, headers={"Idempotency-Key": "contract-2"})[0] == 409
    api.close()
    # Dead letters: a request without reply_to, and one that reached the worker after its deadline.
    stale = pika.BasicProperties(app_id="contract-test", type="lookup", reply_to="amq.rabbitmq.reply-to",
                                 correlation_id=uuid.uuid4().hex,
                                 headers={"deadline_ms": int(time.time() * 1000) - 1000})
    admin_channel.basic_consume("amq.rabbitmq.reply-to", lambda *_: None, auto_ack=True)
    admin_channel.basic_publish("", settings.queue("catalog"), b'{"name": "GameStart"}', stale)
    admin_channel.basic_publish("", settings.queue("catalog"), b"not json",
                                pika.BasicProperties(app_id="contract-test", type="lookup"))


def _answered_trades(published, settings):
    """``[(stock, catalog_seq)]`` of every successful trade reply, sent alone or in a batch."""
    trades = {}  # correlation id -> the stocks of the trades the request sent
    for _, key, props, body in published:
        if key == settings.queue("order") and props.get("type") in ("trade", "batch"):
            request = json.loads(body)
            calls = request["calls"] if props["type"] == "batch" else [{"args": request}]
            trades[props["correlation_id"]] = [call["args"]["name"] for call in calls]
    answered = []
    for _, key, props, body in published:
        if key.startswith("amq.rabbitmq.reply-to.") and props.get("correlation_id") in trades:
            reply = json.loads(body)
            envelopes = reply.get("data", []) if props["type"] == "batch" else [reply]
            answered += [(name, envelope["data"]["catalog_seq"]) for name, envelope
                         in zip(trades[props["correlation_id"]], envelopes, strict=False) if "data" in envelope]
    return answered


def _batched(messages, settings):
    """Whether the captured messages hold a batch request of trades and an orders entry of several orders."""
    def together(exchange, key, props, body):
        if exchange == "" and key == settings.queue("order") and props.get("type") == "batch":
            return "batch"
        if exchange == "" and key == settings.queue("orders") and props.get("type") == "orders":
            return "orders" if len(json.loads(body)) > 1 else None
        return None

    return {together(*message) for message in messages} >= {"batch", "orders"}


def _trade_together(stack, capture, settings, connections=8, bursts=20):
    """Trades in flight together until the frontend sends several in one request and the leader
    proposes several in one stream entry (adaptive batching, in both)."""
    def sell(_):  # sells, which never run out of shares
        api = Session(stack.url)
        try:
            return api.post("/orders", {"name": "FishCo", "quantity": 1, "type": "sell"})[0]
        finally:
            api.close()

    with ThreadPoolExecutor(connections) as pool:
        for _ in range(bursts):
            assert list(pool.map(sell, range(connections))) == [200] * connections
            if _batched(capture.drain(), settings):
                return
    pytest.fail(f"{bursts} bursts of {connections} concurrent trades never made a batch request and an "
                f"orders entry of several")


def test_live_messages_conform_to_the_document(vhost, tmp_path):
    settings = Settings(amqp_url=vhost.url, namespace="bazaar", data_dir=tmp_path / "data", rpc_timeout=3.0)
    capture = Capture(settings)
    # Tracing on, so messages carry traceparent, which is checked too.
    # Two catalog replicas, as deployed: competing consumers of the catalog's queue, each reading the stream.
    traced = {"TRACE_DIR": str(tmp_path / "traces"), "TRACE_SAMPLE_RATIO": "1"}
    with Stack(settings, env=traced, log_dir=tmp_path, catalog_replicas=2) as stack:
        served = Session(stack.url).get("/asyncapi.json")
        assert served[:2] == (200, DOC)
        admin = capture.connection.channel()
        _drive(stack, admin, settings)
        _trade_together(stack, capture, settings)
        # A replica that starts with entries applied probes the stream's length with a sync entry.
        stack.stop("catalog-1")
        stack.start("catalog-1")
        capture.wait_for(lambda exchange, key, props, body: key == settings.queue("orders")
                         and props.get("app_id") == "catalog-1", "the restarted catalog replica's probe")
        letters, deadline = [], time.monotonic() + 10
        while len(letters) < 2:
            assert time.monotonic() < deadline, f"dead letters: {letters}"
            letters += capture.dead_letters()
            time.sleep(0.1)
        published, entries = capture.drain(), capture.stream()

    seen, errors = set(), []

    def check(pointer, props, body, where):
        seen.add(pointer)
        errors.extend(f"{where} {pointer}: {error}" for error in _message_errors(pointer, props, body))

    requests = {}  # correlation id -> operation of the request
    channels = {settings.queue("catalog"): "catalogRequests", settings.queue("order"): "orderRequests"}
    for exchange, key, props, body in published:
        if props.get("app_id") == "contract-test":
            continue  # the test's own malformed requests, checked as dead letters below
        if exchange == "" and key in channels:
            channel = channels[key]
            message = props.get("type")
            if message not in DOC["channels"][channel]["messages"]:
                errors.append(f"undocumented message {message!r} on {key}: {props} {body[:200]!r}")
                continue
            pointer = f"/channels/{channel}/messages/{message}"
            requests[props["correlation_id"]] = next(op for op in DOC["operations"].values()
                                                     if op["messages"] == [{"$ref": f"#{pointer}"}])
            check(pointer, props, body, "request")
        elif exchange == "" and key.startswith("amq.rabbitmq.reply-to."):
            operation = requests.get(props.get("correlation_id"))
            if operation is None:
                errors.append(f"a reply to no captured request: {props} {body[:200]!r}")
                continue
            check(operation["reply"]["messages"][0]["$ref"][1:], props, body, "reply")
        elif exchange == settings.events_exchange and key == "order.status":
            check("/channels/orderStatus/messages/orderStatus", props, body, "status event")
        elif exchange == settings.events_exchange:
            check("/channels/stockEvents/messages/stockChanged", props, body, f"event {key}")
            assert key == f"stock.{json.loads(body)['name']}"
        elif exchange == "" and key == f"{settings.queue('orders')}.lock":
            seen.add("/channels/streamLock/messages/lockToken")  # no properties, no body: nothing to parse
            if body:
                errors.append(f"a lock token with a body: {body[:200]!r}")
        elif exchange == "" and key == settings.queue("orders"):
            check(f"/channels/orderStream/messages/{props['type']}Entry", props, body, "stream append")
        else:
            errors.append(f"a message on no documented channel: exchange {exchange!r}, key {key!r}, {props}")
    for props, body in entries:
        check(f"/channels/orderStream/messages/{props['type']}Entry", props, body, "stream read")
        assert isinstance(props["headers"].get("x-stream-offset"), int)
    for props, body in letters:
        check("/channels/deadLetters/messages/deadLetter", props, body, "dead letter")
    assert not errors, "\n".join(errors)

    documented = {f"/channels/{name}/messages/{message}" for name, channel in DOC["channels"].items()
                  for message in channel["messages"]}
    assert documented >= READ_ONLY
    assert seen == documented - READ_ONLY, (f"never seen: {sorted(documented - READ_ONLY - seen)}; written, though "
                                            f"documented for readers only: {sorted(seen & READ_ONLY)}")
    # Every successful trade reply's stock is announced at its seq or later: one event per stock
    # per commit of the leader, however many trades of it the commit holds.
    answered = _answered_trades(published, settings)
    events = [json.loads(body) for exchange, key, _, body in published if exchange == settings.events_exchange
              and key.startswith("stock.")]
    assert answered and len(events) <= len(answered)
    assert all(any(e["name"] == name and e["seq"] >= seq for e in events) for name, seq in answered)
    assert len(letters) == 2 and {p["headers"]["x-first-death-reason"] for p, _ in letters} == {"rejected"}
    assert any("traceparent" in props.get("headers", {}) for _, _, props, _ in published)

"""Calls that many threads make at once, sent together: one ``batch`` request and one reply for all."""
import functools
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from pika import BlockingConnection

from broker import tracing
from broker.client import BROKER_UNAVAILABLE, DIRECT_REPLY_TO, RpcClient
from broker.connection import call_soon
from broker.consumer import Consumer
from broker.messages import RpcError, deadline, encode, parse_reply, properties, unique_id
from runtime.logs import request_id
from runtime.metrics import RPC_CALL_DURATION, RPC_CALLS_IN_FLIGHT

log = logging.getLogger(__name__)
BATCH_LIMIT = 100  # calls in one request at most


class Batcher(Consumer):
    """An RpcClient (``call``) that sends the calls of ``methods`` (``{service: {method, ...}}``) made
    while its thread is busy as one ``batch`` request (RpcServer answers it), and every other call
    through ``rpc``. A traced call rides the batch too, with its trace context in its entry (``trace``),
    and its client span lasts on the caller's thread until its reply.

    Its thread owns one connection: it publishes the calls queued since its last batch, reads the
    replies and hands each caller its own. A lone call goes at once; a method has one batch in
    flight at most, and the calls made while it is out go together in the next, sent when its reply
    comes: batching that adapts to the load, clocked by the replies, with no timer. The service
    handles the calls of a batch as if they came one by one. A traced call's span notes when its
    batch went out and when this thread had its reply (``bazaar.batch.sent_ns``, ``.replied_ns``), so
    that a trace tells the wait for the batch in flight and for the caller's thread from the broker's hops.
    """

    def __init__(self, settings: Any, rpc: RpcClient, methods: dict[str, set[str]], app_id: str) -> None:
        super().__init__(settings, f"{app_id}-batch")
        self.rpc, self.methods, self.app_id = rpc, methods, app_id
        self._lock = threading.Lock()
        self._link: tuple[BlockingConnection, Any] | None = None
        self._queued: dict[tuple[str, str], list] = {}  # (service, method) -> [(args, rid, trace, Future, ends)]
        # correlation id -> (ends, (service, method), Futures, when it was sent in ns)
        self._sent: dict[str, tuple[float, tuple[str, str], list[Future], int]] = {}
        self._swept = 0.0
        self._calls: dict[tuple[str, str], int] = {}  # calls in progress, batched or not
    def call(self, service: str, method: str, args: dict, timeout: float | None = None) -> Any:
        """RpcClient.call: the reply's ``data``, or RpcError."""
        if method not in self.methods.get(service, ()):
            return self.rpc.call(service, method, args, timeout)
        key = service, method
        with self._lock:
            alone, self._calls[key] = not self._calls.get(key), self._calls.get(key, 0) + 1
        try:
            # A lone call goes on the caller's own connection: handing it to this thread and back
            # would cost two thread switches (~0.5 ms of a trade at one connection here).
            if alone or self._link is None:
                return self.rpc.call(service, method, args, timeout)
            return self._call_batched(service, method, args, timeout)
        finally:
            with self._lock:
                self._calls[key] -= 1

    def _call_batched(self, service: str, method: str, args: dict, timeout: float | None) -> Any:
        timeout = timeout or self.settings.rpc_timeout
        if (ends := deadline.get()) is not None:
            timeout = min(timeout, ends - time.time())
        with RPC_CALLS_IN_FLIGHT.labels(service).track_inprogress(), RPC_CALL_DURATION.labels(service, method).time(), \
                tracing.span(f"{service}/{method}", tracing.SpanKind.CLIENT, self.settings.queue(service),
                             attributes={"bazaar.batched": True}) as span:
            reply: Future = Future()
            with self._lock:
                if self._link is None:
                    raise RpcError(503, BROKER_UNAVAILABLE)
                queue = self._queued.setdefault((service, method), [])
                # The first since the last batch asks for one; the rest join it.
                if not queue and not call_soon(self._link[0], functools.partial(self._send, service, method)):
                    raise RpcError(503, BROKER_UNAVAILABLE)
                queue.append((args, request_id.get(), tracing.inject({}), reply, time.time() + timeout))
            try:
                envelope, sent_ns, replied_ns = reply.result(timeout=max(timeout, 0))
            except TimeoutError:
                log.warning("%s on %s got no reply within %g s", method, service, timeout)
                raise RpcError(504, f"no reply from the {service} service in time") from None
            span.set_attributes({"bazaar.batch.sent_ns": sent_ns, "bazaar.batch.replied_ns": replied_ns})
            return parse_reply(envelope)

    def subscribe(self, connection: BlockingConnection) -> None:
        channel = connection.channel()
        channel.add_on_return_callback(self._on_return)
        channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
        with self._lock:
            self._link = connection, channel

    def pump(self, connection: BlockingConnection) -> None:
        super().pump(connection)
        if time.monotonic() - self._swept > 1:  # the callers of a batch never answered have given up
            self._swept, now = time.monotonic(), time.time()
            expired = [cid for cid, (ends, *_) in self._sent.items() if ends < now]
            if expired:
                # As RpcClient after a 504: the channel itself may be what is stuck (RabbitMQ 3.10 can
                # leave one sending to a quorum queue's dead leader), so the next batch gets a new one.
                raise ConnectionError(f"{len(expired)} batch request(s) got no reply in time")

    def disconnected(self) -> None:
        with self._lock:
            self._link, queued, sent, self._queued, self._sent = None, self._queued, self._sent, {}, {}
        self._fail([reply for calls in queued.values() for *_, reply, _ in calls], RpcError(503, BROKER_UNAVAILABLE))
        self._fail([reply for _, _, replies, _ in sent.values() for reply in replies],
                   RpcError(503, BROKER_UNAVAILABLE))

    def _send(self, service: str, method: str) -> None:
        """Publish the calls queued for ``method`` as one request, unless one is in flight (on this thread).

        A window of one batch: under load each reply brings back one request's worth of calls, so a
        trade costs the broker and both ends a fraction of a request (a window without limit sent
        1.8 trades per request at 8 connections, this one 3.6, for 16 % less CPU per trade)."""
        key = service, method
        with self._lock:
            if self._link is None or any(sent == key for _, sent, *_ in self._sent.values()):
                return  # the calls go when the batch in flight is answered
            calls = self._queued.pop(key, [])
            if len(calls) > BATCH_LIMIT:
                self._queued[key] = calls[BATCH_LIMIT:]
                calls = calls[:BATCH_LIMIT]
            if not calls:
                return
            _, channel = self._link
        ends = max(call_ends for *_, call_ends in calls)
        correlation_id = unique_id()
        # In flight until answered; stamped before the publish, which may wait for the GIL on its way out.
        self._sent[correlation_id] = ends, key, [reply for *_, reply, _ in calls], time.time_ns()
        props = properties(self.app_id, "batch", reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id,
                           expiration=str(max(1, int((ends - time.time()) * 1000))))
        props.headers["deadline_ms"] = int(ends * 1000)
        body = {"method": method, "calls": [{"args": args, "request_id": rid, **({"trace": trace} if trace else {})}
                                            for args, rid, trace, *_ in calls]}
        channel.basic_publish("", self.settings.queue(service), encode(body), props, mandatory=True)

    def _on_reply(self, _channel: Any, _method: Any, props: Any, body: bytes) -> None:
        replied_ns = time.time_ns()
        _, key, replies, sent_ns = self._sent.pop(props.correlation_id, (0, ("", ""), None, 0))
        if replies is None:
            return  # its callers have given up
        self._send(*key)  # the calls queued while it was out go next
        try:
            envelopes = parse_reply(body)
            if not isinstance(envelopes, list) or len(envelopes) != len(replies):
                raise RpcError(502, "malformed reply from a worker")
        except RpcError as exc:
            self._fail(replies, exc)
            return
        for reply, envelope in zip(replies, envelopes, strict=True):
            reply.set_result((envelope, sent_ns, replied_ns))

    def _on_return(self, _channel: Any, _method: Any, props: Any, _body: bytes) -> None:
        _, (service, method), replies, _ = self._sent.pop(props.correlation_id, (0, ("", ""), None, 0))
        if replies is not None:
            self._send(service, method)
            log.warning("batch on %s: no such queue, is the %s worker started?", self.settings.queue(service), service)
            self._fail(replies, RpcError(503, f"the {service} service is unavailable"))

    @staticmethod
    def _fail(replies: list[Future], error: RpcError) -> None:
        for reply in replies:
            if not reply.done():
                reply.set_exception(error)

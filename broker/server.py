"""RPC server for workers: N consumer threads, each with its own connection, or one
single active consumer whose requests N threads handle."""
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pika import BasicProperties, BlockingConnection

from broker import tracing
from broker.connection import call_soon, declare_queue
from broker.consumer import Consumer
from broker.events import declare_exchange
from broker.futures import gather
from broker.messages import BadMessage, RpcError, deadline, encode, parse_request, properties
from runtime.lifecycle import Component
from runtime.logs import request_id
from runtime.metrics import RPC_DEAD_LETTERED, RPC_HANDLED, RPC_HANDLING_DURATION
from runtime.settings import Settings
from storage.files import DiskFull

log = logging.getLogger(__name__)
Handler = Callable[[dict], Any]
# A quick handler answers on the consumer's thread without blocking: the Future of the reply's data,
# or None when it cannot (the request then goes to a handler thread, as does one whose Future gives None).
QuickHandler = Callable[[dict], "Future | None"]


class StepDown(Exception):
    """Raised by a handler of a single active consumer that cannot serve: another consumer should."""


class RpcServer(Consumer):
    """Consumes a service's queue and answers each request with the handler for its ``type``.

    A handler takes the request's JSON object and returns the reply's ``data`` or raises RpcError;
    every server also answers ``ping``, so callers can check that it consumes. A request is acked
    once handled and answered (``_finish``); a malformed request gets a 400 reply when it can, and
    is dead-lettered either way. A request whose
    caller has stopped waiting (it sat in this worker's prefetch while the worker was busy or
    frozen) is dead-lettered unhandled, so a request that timed out is not executed later.

    With ``single_active`` the queue delivers to one consumer at a time across every process
    serving it (RabbitMQ's single active consumer): this process subscribes once, calls
    ``on_standby`` (it is a standby until a request arrives; also called when its connection
    drops), and hands each request to one of ``threads`` handler threads, which give the reply and
    ack back to the consumer's thread. Its connection asks for a LEADER_HEARTBEAT heartbeat, so a
    process that freezes or is cut off loses the queue within seconds. A handler that raises
    StepDown leaves its request unanswered and unacked, and the server gives up the queue
    (``step_down``): the connection closes, and it subscribes again behind every other consumer.
    Otherwise each of ``threads`` threads consumes on a connection of its own. A queue that exists
    with other arguments (QueueMismatch) is a failure: no reconnect can fix it.

    ``connection_name`` names its connections, by default the service: replicas of one service give
    each their own, so the management UI tells them apart. A service may answer ``ping`` itself.
    ``calls`` are the services whose queues it declares too, because its handlers or threads call
    them: then services may start in any order, and a request sent before its worker is up waits in
    the queue for it (until its deadline) instead of being unroutable.

    Every server answers ``batch``, the calls of one method that a Batcher sent together, as if each
    came alone: its reply's data is the list of their reply envelopes. A single active consumer may
    have ``quick`` handlers for some methods (``QuickHandler``), tried
    first on the consumer's thread: a request they answer skips the two thread hand-offs of a
    handler thread (~0.4 ms of a round trip here). A traced request, or a traced call of a batch,
    takes the same path as any other and gets a span that lasts until its reply, on either path.
    """

    def __init__(self, settings: Settings, service: str, handlers: Mapping[str, Handler], threads: int,
                 single_active: bool = False, on_standby: Callable[[], None] | None = None,
                 connection_name: str | None = None, calls: Sequence[str] = (),
                 quick: Mapping[str, QuickHandler] | None = None) -> None:
        super().__init__(settings, service, 1 if single_active else threads, connection_name)
        self.service, self.calls = service, calls
        self.handlers = {"ping": self._ping, "batch": self._batch, **handlers}
        self.quick = dict(quick or {}) if single_active else {}
        self._answering: set[Future] = set()  # quick handlers' replies still to come
        self.handler_threads, self.single_active, self.on_standby = threads, single_active, on_standby
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=service) if single_active else None
        # RabbitMQ hands a single active consumer's queue on only once it closes the silent connection.
        self.heartbeat = settings.leader_heartbeat if single_active else None
        self._stepping_down = threading.Event()

    def start(self, on_failure: Callable[[Component], None] | None = None) -> None:
        super().start(on_failure)
        log.info("serving %s with %d threads%s", self.settings.queue(self.service), self.handler_threads,
                 " (single active consumer)" if self.single_active else "")

    def stop(self) -> None:
        """Stop consuming and wait until the requests being handled are finished and acked.

        Each consumer thread notices and closes its own connection (pika is not thread-safe);
        unstarted prefetched requests go back to the queue. Safe to call more than once.
        """
        super().stop()
        log.info("stopped")

    def _ping(self, args: dict) -> dict:
        return {"service": self.service}

    def subscribe(self, connection: BlockingConnection) -> None:
        channel = connection.channel()
        queue = declare_queue(channel, self.settings, self.service, self.single_active)  # or QueueMismatch
        for service in self.calls:
            declare_queue(channel, self.settings, service)
        declare_exchange(channel, self.settings)
        handlers = self.handler_threads if self._pool else 1
        channel.basic_qos(prefetch_count=self.settings.prefetch * handlers)
        channel.basic_consume(queue, self._on_message)
        self.disconnected()  # a standby until a request arrives

    def step_down(self) -> None:
        """Give up the queue (a single active consumer that cannot serve); safe from any thread."""
        self._stepping_down.set()

    def pump(self, connection: BlockingConnection) -> None:
        if self._stepping_down.is_set():
            self._stepping_down.clear()
            log.warning("stepping down: %s goes to the next consumer in line", self.settings.queue(self.service))
            raise StepDown("stepped down")  # closes the connection, requeueing what it holds; then resubscribes
        super().pump(connection)

    def disconnected(self) -> None:
        """Whenever this process is not known to be the active consumer: subscribed, or disconnected."""
        if self.on_standby:
            self.on_standby()

    def drain(self, connection: BlockingConnection) -> None:
        if self._pool:  # let the handlers finish, then send their replies and acks
            ends = time.monotonic() + self.settings.rpc_timeout
            while self._answering and time.monotonic() < ends:
                connection.process_data_events(time_limit=0.05)
            self._pool.shutdown(wait=True)
            connection.process_data_events(time_limit=0)

    def _on_message(self, channel: Any, delivery: Any, props: BasicProperties, body: bytes) -> None:
        if self.stopping.is_set():
            return  # left unacked: the broker requeues it when this connection closes
        if self._pool:
            quick = props.type in self.quick or (props.type == "batch" and self.quick)
            if not (quick and self._handle_quickly(channel, delivery, props, body)):
                self._pool.submit(self._handle, channel, delivery, props, body)
        else:
            self._handle(channel, delivery, props, body)

    def _handle_quickly(self, channel: Any, delivery: Any, props: BasicProperties, body: bytes) -> bool:
        """Try the request's quick handler, on the consumer's thread; whether it took the request."""
        try:
            method, args = parse_request(props, body, self.handlers)
        except BadMessage:
            return False  # a handler thread answers and dead-letters it
        if self._expired(method, props):
            self._on_channel(channel, channel.basic_reject, delivery.delivery_tag, False)
            return True
        started, headers = time.perf_counter(), props.headers or {}
        rid = str(headers.get("request_id") or "-")
        if method == "batch":  # each call of a batch gets a span of its own (_batch_quickly)
            settled = _settle_quickly(self.service, method, self._batch_quickly, args, rid)
        else:
            settled = self._span_until_settled(method, args, rid, headers)
        if settled is None:
            return False
        self._answering.add(settled)
        settled.add_done_callback(functools.partial(self._answer_quickly, channel, delivery, props, body, started))
        return True

    def _answer_quickly(self, channel: Any, delivery: Any, props: BasicProperties, body: bytes, started: float,
                        settled: Future) -> None:
        """Answer a quick handler's request once its ``_settle_quickly`` Future is done (on whichever
        thread did it)."""
        try:
            if settled.exception() is None and settled.result() is None:  # it could not answer after all
                assert self._pool is not None  # quick handlers are only for a single active consumer
                with contextlib.suppress(RuntimeError):  # stopped: unacked, the request goes to the next
                    self._pool.submit(self._handle, channel, delivery, props, body)
                return
            envelope, status = settled.result()
            self._send(channel, delivery, props, envelope, status, props.type, started)
        except StepDown as exc:
            log.warning("%s: stepping down, leaving %s to the next consumer", exc, props.type)
            self.step_down()
        finally:
            self._answering.discard(settled)

    def _batch(self, args: dict) -> list[dict]:
        """Answer each call of a batch as if it came alone: the list of their reply envelopes."""
        method, calls = _parse_batch(args, self.handlers)
        envelopes = []
        for call_args, rid, carrier in calls:
            token = request_id.set(rid)
            try:
                with self._span(method, carrier, rid) as span:
                    envelope, status = answer(self.service, method, self.handlers[method], call_args)
                    tracing.set_status(span, "rpc.response.status_code", status)
                envelopes.append(envelope)
            finally:
                request_id.reset(token)
        return envelopes

    def _batch_quickly(self, args: dict) -> Future | None:
        """A batch through its method's quick handler: the Future of the list of reply envelopes, or
        None if any call cannot be answered so (then a handler thread answers them all: the calls
        already taken must be safe to make twice, as trades with their trade ids are)."""
        method, calls = _parse_batch(args, self.quick)
        replies = []
        for call_args, rid, carrier in calls:
            if (reply := self._span_until_settled(method, call_args, rid, carrier)) is None:
                return None
            replies.append(reply)
        return gather(replies, lambda done: [reply.result()[0] for reply in done])

    def _span_until_settled(self, method: str, args: dict, rid: str, carrier: dict) -> Future | None:
        """``_settle_quickly`` for one request (or call of a batch), in a span of the trace its
        ``carrier`` holds, if any, that lasts until it is settled."""
        start = functools.partial(_settle_quickly, self.service, method, self.quick[method], args, rid)
        return tracing.span_until_done(f"{self.service}/{method}", tracing.SpanKind.SERVER,
                                       self.settings.queue(self.service), start, carrier,
                                       {"bazaar.request_id": rid}, _record_status)

    def _span(self, method: str, carrier: dict, rid: str) -> contextlib.AbstractContextManager:
        """The span of a request (or of a call of a batch) in the trace its ``carrier`` holds, if any."""
        return tracing.span(f"{self.service}/{method}", tracing.SpanKind.SERVER, self.settings.queue(self.service),
                            carrier, {"bazaar.request_id": rid})

    def _on_channel(self, channel: Any, operation: Callable[..., object], *args: Any) -> None:
        """Run a channel operation on the consumer's thread: pika is not thread-safe."""
        if not self._pool:
            operation(*args)
            return
        if not call_soon(channel.connection, functools.partial(operation, *args)):
            # The broker redelivers the request to the next active consumer.
            log.warning("lost the connection before replying")

    def _handle(self, channel: Any, delivery: Any, props: BasicProperties, body: bytes) -> None:
        try:
            method, args = parse_request(props, body, self.handlers)
        except BadMessage as exc:
            log.warning("dead-lettering malformed message %r from %s: %s",
                        body[:200], props.app_id, exc)
            if props.reply_to:
                self._reply(channel, props, RpcError(400, f"malformed request: {exc}").envelope())
            RPC_DEAD_LETTERED.labels(self.service, "malformed").inc()
            self._on_channel(channel, channel.basic_reject, delivery.delivery_tag, False)
            return
        headers = props.headers or {}
        if self._expired(method, props):
            self._on_channel(channel, channel.basic_reject, delivery.delivery_tag, False)
            return
        token = request_id.set(str(headers.get("request_id") or "-"))
        deadline.set(_deadline(headers))
        started = time.perf_counter()
        with self._span(method, headers, request_id.get()) as span:
            try:
                reply, status = answer(self.service, method, self.handlers[method], args)
            except StepDown as exc:
                log.warning("%s: stepping down, leaving %s to the next consumer", exc, method)
                self.step_down()
                request_id.reset(token)
                return
            tracing.set_status(span, "rpc.response.status_code", status)
        self._send(channel, delivery, props, reply, status, method, started)
        request_id.reset(token)

    def _expired(self, method: str, props: BasicProperties) -> bool:
        """Whether the request's caller has stopped waiting (then it is counted, to be dead-lettered)."""
        ends = _deadline(props.headers or {})
        if ends is None or time.time() <= ends:
            return False
        log.warning("dead-lettering %s from %s: its caller stopped waiting %.2f s ago",
                    method, props.app_id, time.time() - ends)
        RPC_DEAD_LETTERED.labels(self.service, "expired").inc()
        return True

    def _send(self, channel: Any, delivery: Any, props: BasicProperties, reply: dict, status: int, method: str,
              started: float) -> None:
        """Reply and ack (on the consumer's thread), and count the request as handled."""
        self._on_channel(channel, self._finish_unless_stepping_down, channel, delivery,
                         ("", props.reply_to, encode(reply), self._reply_properties(props)))
        elapsed = time.perf_counter() - started
        RPC_HANDLED.labels(self.service, method, status).inc()
        RPC_HANDLING_DURATION.labels(self.service, method).observe(elapsed)
        # Health checks come every second or so: at INFO they would bury the work.
        log.log(logging.DEBUG if method == "ping" else logging.INFO,
                "%s from %s: %d in %.2fms", method, props.app_id, status, elapsed * 1000)

    def _finish_unless_stepping_down(self, *args: Any) -> None:
        """``_finish``, on the consumer's thread, unless the server is stepping down: then the request
        stays unanswered and unacked, and goes to the next consumer with the rest."""
        if not self._stepping_down.is_set():
            self._finish(*args)

    @staticmethod
    def _finish(channel: Any, delivery: Any, reply: tuple) -> None:
        """Publish a handled request's reply and ack it, on the consumer's thread.

        The reply goes before the ack: SIGKILL resets the connection, and RabbitMQ drops what it
        had not read of it yet, so of the last frames only the first may count. A reply without
        its ack costs a second, idempotent handling; an ack without its reply would leave the
        caller with a 504. A redelivered request is acked first, though: if its caller's node has
        died, replying makes RabbitMQ 3.10 close this connection, and unacked the request would go
        on to crash every consumer it is redelivered to.
        """
        if delivery.redelivered:
            channel.basic_ack(delivery.delivery_tag)
        channel.basic_publish(*reply)
        if not delivery.redelivered:
            channel.basic_ack(delivery.delivery_tag)

    def _reply(self, channel: Any, request: BasicProperties, reply: dict) -> None:
        self._on_channel(channel, channel.basic_publish, "", request.reply_to, encode(reply),
                         self._reply_properties(request))

    def _reply_properties(self, request: BasicProperties) -> BasicProperties:
        return properties(self.service, request.type, correlation_id=request.correlation_id)


def _deadline(headers: dict) -> float | None:
    """When the request's caller stops waiting (epoch seconds), if it said."""
    return headers["deadline_ms"] / 1000 if isinstance(headers.get("deadline_ms"), int) else None


def _try_quickly(handler: Callable[[dict], "Future | None"], args: dict, rid: str) -> "Future | None":
    """A quick handler's Future (its exception, if it raised one, as the request's outcome), or None."""
    token = request_id.set(rid)
    try:
        return handler(args)
    except Exception as exc:  # noqa: BLE001 - answered as the handler's outcome, as on a handler thread
        failed: Future = Future()
        failed.set_exception(exc)
        return failed
    finally:
        request_id.reset(token)


def _settle_quickly(service: str, method: str, handler: QuickHandler, args: dict, rid: str) -> "Future | None":
    """``_try_quickly``, its Future turned into that of the call's ``(envelope, status)`` (or of None,
    if the handler could not answer after all, or of StepDown)."""
    if (reply := _try_quickly(handler, args, rid)) is None:
        return None
    settled: Future = Future()

    def settle(done: Future) -> None:
        try:
            declined = done.exception() is None and done.result() is None
            settled.set_result(None if declined else outcome(service, method, done))
        except StepDown as exc:
            settled.set_exception(exc)

    reply.add_done_callback(settle)
    return settled


def _record_status(span: Any, settled: Future) -> None:
    """Record the status of a call that ``_settle_quickly`` answered on its span."""
    if settled.exception() is None and settled.result() is not None:
        tracing.set_status(span, "rpc.response.status_code", settled.result()[1])


def _parse_batch(args: dict, methods: Mapping[str, Any]) -> tuple[str, list[tuple[dict, str, dict]]]:
    """The method and the calls ``(args, request id, trace context)`` of a batch request, or RpcError 400.
    A call's trace context is the W3C carrier of its caller's span (``{}`` if it is not traced)."""
    method, calls = args.get("method"), args.get("calls")
    if method not in methods or method in ("batch", "ping") or not isinstance(calls, list):
        raise RpcError(400, "a batch needs a 'method' this service batches and a list of 'calls'")
    if not all(isinstance(call, dict) and isinstance(call.get("args"), dict) for call in calls):
        raise RpcError(400, "each call of a batch needs its 'args' object")
    return str(method), [(call["args"], str(call.get("request_id") or "-"),
                          call["trace"] if isinstance(call.get("trace"), dict) else {}) for call in calls]


def outcome(service: str, method: str, reply: Future) -> tuple[dict, int]:
    """``answer`` for a handler whose reply came as ``reply``, a Future that is done."""
    return answer(service, method, lambda _: reply.result(), {})


def answer(service: str, method: str, handler: Handler, args: dict) -> tuple[dict, int]:
    """Run a handler: its reply envelope and status. The one place where an error
    raised below the RPC layer gets the status its caller sees."""
    try:
        result = handler(args)
    except StepDown:
        raise  # no answer at all: the next consumer gets the request
    except RpcError as exc:
        return exc.envelope(), exc.code
    except DiskFull as exc:
        return RpcError(507, str(exc)).envelope(), 507
    except Exception:
        log.exception("%s failed", method)
        return RpcError(500, f"internal error in {service}.{method}").envelope(), 500
    return {"data": result}, 200

"""RPC server loop for workers: N consumer threads, each with its own connection, or one
single active consumer whose requests N threads handle."""
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from pika.exceptions import AMQPError

from broker.connection import QueueMismatch, connect, declare_queue
from broker.events import declare_exchange
from broker.logs import request_id
from broker.messages import (
    BadMessage,
    RpcError,
    deadline,
    encode,
    parse_request,
    properties,
)
from broker.metrics import RPC_DEAD_LETTERED, RPC_HANDLED, RPC_HANDLING_DURATION, serve_metrics
from broker.signals import StopSignal

log = logging.getLogger(__name__)
STOP_CHECK_INTERVAL = 0.2  # seconds an idle consumer thread waits before it looks for a stop


class StepDown(Exception):
    """Raised by a handler of a single active consumer that cannot serve: another consumer should."""


class Reply(NamedTuple):
    """A handler's reply ``data`` with the Publications (events) it causes.

    They go out on the consumer's own channel just before the reply, so a caller that gets the
    reply knows they are on their way.
    """
    data: object
    publications: tuple = ()


class RpcServer:
    """Consumes a service's queue and answers each request with the handler for its ``type``.

    A handler takes the request's JSON object and returns the reply's ``data`` (or a Reply
    with events to publish) or raises RpcError; every server also answers ``ping``, so callers
    can check that it consumes. A request is acked once handled and answered (``_finish``); a
    malformed request gets a 400 reply when it can, and is dead-lettered either way. A request whose
    caller has stopped waiting (it sat in this worker's prefetch while the worker was busy or
    frozen) is dead-lettered unhandled, so a request that timed out is not executed later.

    With ``single_active`` the queue delivers to one consumer at a time across every process
    serving it (RabbitMQ's single active consumer): this process subscribes once, calls
    ``on_standby`` (it is a standby until a request arrives; also called when its connection
    drops), and hands each request to one of ``threads`` handler threads, which give the reply and
    ack back to the consumer's thread. A handler that raises StepDown leaves its request unanswered
    and unacked, and the server gives up the queue (``step_down``): the next consumer answers it.
    """

    def __init__(self, settings, service, handlers, threads, single_active=False, on_standby=None):
        self.settings, self.service = settings, service
        self.handlers = {**handlers, "ping": self._ping}
        self.threads, self.single_active, self.on_standby = threads, single_active, on_standby
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=service) if single_active else None
        self._stopping, self._stepping_down = threading.Event(), threading.Event()
        self._workers = []
        self._on_failure = None
        self.failure = None

    def start(self, on_failure=None):
        """Start consuming in threads of its own; ``on_failure()`` is called when the server ``fail``s,
        e.g. because the service's queue exists with another type."""
        self._on_failure = on_failure
        if self.failure and on_failure:  # it failed before it started
            on_failure()
        self._workers = [threading.Thread(target=self._consume, name=f"{self.service}-{n}")
                         for n in range(1 if self.single_active else self.threads)]
        for worker in self._workers:
            worker.start()
        log.info("serving %s with %d threads%s", self.settings.queue(self.service), self.threads,
                 " (single active consumer)" if self.single_active else "")

    def stop(self):
        """Stop consuming and wait until the requests being handled are finished and acked.

        Each consumer thread notices and closes its own connection (pika is not thread-safe);
        unstarted prefetched requests go back to the queue. Safe to call more than once.
        """
        self._stopping.set()
        for worker in self._workers:
            worker.join()
        log.info("stopped")

    def fail(self, reason):
        """Stop serving for good, because of ``reason`` (``failure``), which no reconnect can fix."""
        self.failure = reason
        self._stopping.set()
        if self._on_failure:
            self._on_failure()

    def _ping(self, args):
        return {"service": self.service}

    def _consume(self):
        while not self._stopping.is_set():
            try:
                # A single active consumer that freezes or is cut off must lose the queue within
                # seconds: RabbitMQ hands it on only once it closes the silent connection.
                heartbeat = self.settings.leader_heartbeat if self.single_active else None
                connection = connect(self.settings, self.service, self._stopping, heartbeat=heartbeat)
            except (AMQPError, OSError):
                return  # only reraised once stopping
            try:
                channel = connection.channel()
                queue = declare_queue(channel, self.settings, self.service, self.single_active)
                declare_exchange(channel, self.settings)
                handlers = self.threads if self._pool else 1
                channel.basic_qos(prefetch_count=self.settings.prefetch * handlers)
                channel.basic_consume(queue, self._on_message)
                self._standing_by()
                while not self._stopping.is_set() and not self._stepping_down.is_set():
                    connection.process_data_events(time_limit=STOP_CHECK_INTERVAL)
                if self._stepping_down.is_set():
                    # Closing the connection (below) hands the queue and the unacked requests to the
                    # next consumer in line; this one subscribes again, at the end of the line.
                    self._stepping_down.clear()
                    log.warning("stepped down: the order queue goes to the next replica in line")
                elif self._pool:  # let the handlers finish, then send their replies and acks
                    self._pool.shutdown(wait=True)
                    connection.process_data_events(time_limit=0)
            except QueueMismatch as exc:
                self.fail(exc)
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                log.warning("lost connection to broker: %r", exc)
            finally:
                self._standing_by()
                if connection.is_open:
                    connection.close()

    def step_down(self):
        """Give up the queue (a single active consumer that cannot serve): close the connection and
        subscribe again, behind every other consumer; safe from any thread."""
        self._stepping_down.set()

    def _standing_by(self):
        """Whenever this process is not known to be the active consumer: subscribed, or disconnected."""
        if self.on_standby:
            self.on_standby()

    def _on_message(self, channel, delivery, props, body):
        if self._stopping.is_set():
            return  # left unacked: the broker requeues it when this connection closes
        if self._pool:
            self._pool.submit(self._handle, channel, delivery, props, body)
        else:
            self._handle(channel, delivery, props, body)

    def _on_channel(self, channel, operation, *args):
        """Run a channel operation on the consumer's thread: pika is not thread-safe."""
        if not self._pool:
            operation(*args)
            return
        try:
            channel.connection.add_callback_threadsafe(functools.partial(operation, *args))
        except AMQPError as exc:  # the broker redelivers the request to the next active consumer
            log.warning("lost the connection before replying: %r", exc)

    def _handle(self, channel, delivery, props, body):
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
        ends = headers["deadline_ms"] / 1000 if isinstance(headers.get("deadline_ms"), int) else None
        if ends is not None and time.time() > ends:
            log.warning("dead-lettering %s from %s: its caller stopped waiting %.2f s ago",
                        method, props.app_id, time.time() - ends)
            RPC_DEAD_LETTERED.labels(self.service, "expired").inc()
            self._on_channel(channel, channel.basic_reject, delivery.delivery_tag, False)
            return
        token = request_id.set(str(headers.get("request_id") or "-"))
        deadline.set(ends)
        started = time.perf_counter()
        publications = ()
        try:
            result = self.handlers[method](args)
            if isinstance(result, Reply):
                result, publications = result
            reply, status = {"data": result}, 200
        except StepDown as exc:
            log.warning("%s: stepping down, leaving %s to the next consumer", exc, method)
            self.step_down()
            request_id.reset(token)
            return
        except RpcError as exc:
            reply, status = exc.envelope(), exc.code
        except Exception:  # noqa: BLE001 - a bug in one request must not stop the worker
            log.exception("%s failed", method)
            reply, status = RpcError(500, f"internal error in {self.service}.{method}").envelope(), 500
        self._on_channel(channel, self._finish_unless_stepping_down, channel, publications, delivery,
                         ("", props.reply_to, encode(reply), self._reply_properties(props)))
        elapsed = time.perf_counter() - started
        RPC_HANDLED.labels(self.service, method, status).inc()
        RPC_HANDLING_DURATION.labels(self.service, method).observe(elapsed)
        log.info("%s from %s: %d in %.2fms", method, props.app_id, status, elapsed * 1000)
        request_id.reset(token)

    def _finish_unless_stepping_down(self, *args):
        """``_finish``, on the consumer's thread, unless the server is stepping down: then the request
        stays unanswered and unacked, and goes to the next consumer with the rest."""
        if not self._stepping_down.is_set():
            self._finish(*args)

    @staticmethod
    def _finish(channel, publications, delivery, reply):
        """Publish a handled request's events and its reply, and ack it, on the consumer's thread.

        The reply goes before the ack: SIGKILL resets the connection, and RabbitMQ drops what it
        had not read of it yet, so of the last frames only the first may count. A reply without
        its ack costs a second, idempotent handling; an ack without its reply would leave the
        caller with a 504. A redelivered request is acked first, though: if its caller's node has
        died, replying makes RabbitMQ 3.10 close this connection, and unacked the request would go
        on to crash every consumer it is redelivered to.
        """
        for message in publications:
            channel.basic_publish(*message)
        if delivery.redelivered:
            channel.basic_ack(delivery.delivery_tag)
        channel.basic_publish(*reply)
        if not delivery.redelivered:
            channel.basic_ack(delivery.delivery_tag)

    def _reply(self, channel, request, reply):
        self._on_channel(channel, channel.basic_publish, "", request.reply_to, encode(reply),
                         self._reply_properties(request))

    def _reply_properties(self, request):
        return properties(self.service, request.type, correlation_id=request.correlation_id)


def serve_until_signalled(server):
    """Run ``server``, with its metrics, until SIGTERM or Ctrl-C, then stop it gracefully."""
    serve_metrics(server.settings)
    stop_signal = StopSignal()
    server.start(on_failure=stop_signal.set)
    stop_signal.wait()
    server.stop()
    if server.failure:
        log.error("%s", server.failure)
        raise SystemExit(1)

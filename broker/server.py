"""RPC server loop for workers: N consumer threads, each with its own connection."""
import logging
import threading
import time

from pika.exceptions import AMQPError

from broker.connection import connect, declare_queue
from broker.logs import request_id
from broker.signals import StopSignal
from broker.messages import (
    BadMessage,
    RpcError,
    deadline,
    encode,
    parse_request,
    properties,
)

log = logging.getLogger(__name__)
STOP_CHECK_INTERVAL = 0.2  # seconds an idle consumer thread waits before it looks for a stop


class RpcServer:
    """Consumes a service's queue and answers each request with the handler for its ``type``.

    A handler takes the request's JSON object and returns the reply's ``data`` or raises
    RpcError. Acks go out only after the reply is published; a malformed request gets a 400
    reply when it can, and is dead-lettered either way. A request whose caller has stopped
    waiting (it sat in this worker's prefetch while the worker was busy or frozen) is
    dead-lettered unhandled, so a request that timed out is not executed later.
    """

    def __init__(self, settings, service, handlers, threads):
        self.settings, self.service, self.handlers = settings, service, handlers
        self.threads = threads
        self._stopping = threading.Event()
        self._workers = []

    def start(self):
        """Start the consumer threads."""
        self._workers = [threading.Thread(target=self._consume, name=f"{self.service}-{n}")
                         for n in range(self.threads)]
        for worker in self._workers:
            worker.start()
        log.info("serving %s with %d threads", self.settings.queue(self.service), self.threads)

    def stop(self):
        """Stop consuming and wait until the requests being handled are finished and acked.

        Each consumer thread notices and closes its own connection (pika is not thread-safe);
        unstarted prefetched requests go back to the queue. Safe to call more than once.
        """
        self._stopping.set()
        for worker in self._workers:
            worker.join()
        log.info("stopped")

    def _consume(self):
        while not self._stopping.is_set():
            try:
                connection = connect(self.settings, self.service, self._stopping)
            except (AMQPError, OSError):
                return  # only reraised once stopping
            try:
                channel = connection.channel()
                queue = declare_queue(channel, self.settings, self.service)
                channel.basic_qos(prefetch_count=self.settings.prefetch)
                channel.basic_consume(queue, self._on_message)
                while not self._stopping.is_set():
                    connection.process_data_events(time_limit=STOP_CHECK_INTERVAL)
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                log.warning("lost connection to broker: %r", exc)
            finally:
                if connection.is_open:
                    connection.close()

    def _on_message(self, channel, delivery, props, body):
        if self._stopping.is_set():
            return  # left unacked: the broker requeues it when this connection closes
        try:
            method, args = parse_request(props, body, self.handlers)
        except BadMessage as exc:
            log.warning("dead-lettering malformed message %r from %s: %s",
                        body[:200], props.app_id, exc)
            if props.reply_to:
                self._reply(channel, props, RpcError(400, f"malformed request: {exc}").envelope())
            channel.basic_reject(delivery.delivery_tag, requeue=False)
            return
        headers = props.headers or {}
        ends = headers["deadline_ms"] / 1000 if isinstance(headers.get("deadline_ms"), int) else None
        if ends is not None and time.time() > ends:
            log.warning("dead-lettering %s from %s: its caller stopped waiting %.2f s ago",
                        method, props.app_id, time.time() - ends)
            channel.basic_reject(delivery.delivery_tag, requeue=False)
            return
        token = request_id.set(str(headers.get("request_id") or "-"))
        deadline.set(ends)
        started = time.perf_counter()
        try:
            reply, status = {"data": self.handlers[method](args)}, 200
        except RpcError as exc:
            reply, status = exc.envelope(), exc.code
        except Exception:  # noqa: BLE001 - a bug in one request must not stop the worker
            log.exception("%s failed", method)
            reply, status = RpcError(500, f"internal error in {self.service}.{method}").envelope(), 500
        self._reply(channel, props, reply)
        channel.basic_ack(delivery.delivery_tag)
        log.info("%s from %s: %d in %.2fms", method, props.app_id, status,
                 (time.perf_counter() - started) * 1000)
        request_id.reset(token)

    def _reply(self, channel, request, reply):
        props = properties(self.service, request.type,
                           correlation_id=request.correlation_id)
        channel.basic_publish("", request.reply_to, encode(reply), props)


def serve_until_signalled(server):
    """Run ``server`` until SIGTERM or Ctrl-C, then stop it gracefully."""
    stop_signal = StopSignal()
    server.start()
    stop_signal.wait()
    server.stop()

"""RPC client that many threads can share: a pool of connections, each used by one thread at a time."""
import contextlib
import logging
import threading
import time
from typing import Any

from pika import BasicProperties, BlockingConnection
from pika.exceptions import AMQPError

from broker import tracing
from broker.connection import connect, tick
from broker.messages import RpcError, deadline, encode, parse_reply, properties, unique_id
from runtime.lifecycle import Loop
from runtime.metrics import RPC_CALL_DURATION, RPC_CALLS_IN_FLIGHT
from runtime.settings import Settings

log = logging.getLogger(__name__)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
CALL_TICK = 0.05  # seconds: how late a call may notice that its time is up
BROKER_UNAVAILABLE = "message broker unavailable"


class _Link:
    """A connection and channel consuming Direct Reply-to, owned by one caller at a time."""

    def __init__(self, connection: BlockingConnection) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.channel.add_on_return_callback(self._on_return)
        self.channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
        tick(connection, CALL_TICK)  # rather than a timer per call (broker.connection.tick)
        self.call_id: str | None = None
        self.body: bytes | None = None
        self.returned = False
        self.last_used = time.monotonic()

    def call(self, service: str, queue: str, body: bytes, props: BasicProperties, timeout: float) -> bytes:
        """Publish a request and pump this connection until its own reply arrives."""
        self.call_id, self.body, self.returned = props.correlation_id, None, False
        self.channel.basic_publish("", queue, body, props, mandatory=True)
        deadline = time.monotonic() + timeout
        while self.body is None and not self.returned:
            if time.monotonic() >= deadline:
                log.warning("%s on %s got no reply within %g s", props.type, queue, timeout)
                raise RpcError(504, f"no reply from the {service} service in time")
            self.connection.process_data_events(time_limit=None)
        self.last_used = time.monotonic()
        if self.returned:
            log.warning("%s on %s: no such queue, is the %s worker started?", props.type, queue, service)
            raise RpcError(503, f"the {service} service is unavailable")
        return self.body

    def close(self) -> None:
        with contextlib.suppress(Exception):  # it is being thrown away anyway
            self.connection.close()

    def _on_reply(self, _channel: Any, _method: Any, props: BasicProperties, body: bytes) -> None:
        # A late reply to a call that already timed out carries another correlation id.
        if props.correlation_id == self.call_id:
            self.body = body

    def _on_return(self, _channel: Any, _method: Any, props: BasicProperties, _body: bytes) -> None:
        if props.correlation_id == self.call_id:
            self.returned = True  # unroutable: the service's queue does not exist


class RpcClient(Loop):
    """Calls ``method`` on a service's queue and waits for the reply matched by correlation id.

    pika is not thread-safe, so each call borrows a connection no other thread is using and
    pumps it itself: no hand-off between threads on the hot path, and no reply queue per call
    (Direct Reply-to). The pool grows to the number of concurrent callers. A keeper thread
    services idle connections so heartbeats flow and dead ones are dropped, from ``start`` to ``stop``.
    Its connections are named ``<namespace>.<connection_name>``, by default its ``app_id``.
    """

    def __init__(self, settings: Settings, app_id: str, connect_patience: float = 0.5,
                 connection_name: str | None = None) -> None:
        super().__init__(f"{app_id}-rpc-keeper", daemon=True)
        self.settings, self.app_id, self.connection_name = settings, app_id, connection_name or app_id
        self.connect_patience = connect_patience
        self._idle: list[_Link] = []
        self._lock = threading.Lock()

    def call(self, service: str, method: str, args: dict, timeout: float | None = None) -> Any:
        """Return the reply's ``data``; raise RpcError for an error reply, 503 or 504."""
        with RPC_CALLS_IN_FLIGHT.labels(service).track_inprogress(), \
                RPC_CALL_DURATION.labels(service, method).time(), \
                tracing.span(f"{service}/{method}", tracing.SpanKind.CLIENT, self.settings.queue(service)):
            return self._call(service, method, args, timeout)

    def _call(self, service: str, method: str, args: dict, timeout: float | None) -> Any:
        timeout = timeout or self.settings.rpc_timeout
        # A call made while handling a request gets no more time than that request's caller has left.
        if (ends := deadline.get()) is not None:
            timeout = min(timeout, ends - time.time())
            if timeout <= 0:
                log.warning("no time left to call %s on %s", method, service)
                raise RpcError(504, f"no reply from the {service} service in time")
        props = properties(self.app_id, method, reply_to=DIRECT_REPLY_TO,
                           correlation_id=unique_id(), expiration=str(max(1, int(timeout * 1000))))
        # The queue drops the request once it expires; the worker drops it if it gets it later.
        props.headers["deadline_ms"] = int((time.time() + timeout) * 1000)
        link = self._borrow()
        try:
            body = link.call(service, self.settings.queue(service), encode(args), props, timeout)
        except AMQPError as exc:
            link.close()
            log.warning("lost connection to the message broker: %r", exc)
            raise RpcError(503, BROKER_UNAVAILABLE) from None
        except RpcError as exc:
            # No reply in time: the channel itself may be what is stuck (RabbitMQ 3.10 can leave a
            # channel opened during a quorum queue's leader election sending to the dead leader), so
            # the next call gets a new one.
            if exc.code == 504:
                link.close()
            else:
                self._give_back(link)
            raise
        except BaseException:
            self._give_back(link)
            raise
        self._give_back(link)
        return parse_reply(body)

    def stop(self) -> None:
        """Stop the keeper and close every idle connection."""
        super().stop()
        with self._lock:
            idle, self._idle = self._idle, []
        for link in idle:
            link.close()

    def _borrow(self) -> _Link:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return _Link(connect(self.settings, self.connection_name, self.stopping, self.connect_patience))
        except (AMQPError, OSError) as exc:
            log.warning("cannot connect to the message broker: %r", exc)
            raise RpcError(503, BROKER_UNAVAILABLE) from None

    def _give_back(self, link: _Link) -> None:
        with self._lock:
            if not self.stopping.is_set():
                self._idle.append(link)
                return
        link.close()

    def run(self) -> None:
        """Service the connections idle for 5 s, so heartbeats flow and dead ones are dropped."""
        while not self.stopping.wait(5):
            with self._lock:
                stale = [link for link in self._idle if time.monotonic() - link.last_used > 5]
                self._idle = [link for link in self._idle if link not in stale]
            for link in stale:
                try:
                    link.connection.process_data_events(time_limit=0)
                    link.last_used = time.monotonic()
                    self._give_back(link)
                except (AMQPError, OSError) as exc:
                    log.warning("dropping a dead broker connection: %r", exc)
                    link.close()

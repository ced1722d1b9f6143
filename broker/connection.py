"""Connecting to RabbitMQ (one node or a cluster) with bounded exponential backoff, and declaring the queues."""
import logging
import threading
from collections.abc import Callable
from typing import Any

import pika
import tenacity
from pika.exceptions import AMQPConnectionError, AMQPError, ChannelClosedByBroker

from runtime.lifecycle import Fatal
from runtime.settings import Settings

log = logging.getLogger(__name__)


class QueueMismatch(Fatal):
    """A queue exists with other arguments than this service declares, e.g. another queue type."""


def parameters(settings: Settings, name: str = "admin", heartbeat: int | None = None) -> list[pika.URLParameters]:
    """Connection parameters for each broker in AMQP_URL, in the order they are tried; ``heartbeat``
    (seconds) replaces the broker's timeout (60 s) for a connection that must be known dead soon."""
    params = [pika.URLParameters(url) for url in settings.amqp_urls]
    for param in params:
        param.client_properties = {"connection_name": f"{settings.namespace}.{name}"}
        param.connection_attempts = 1
        param.blocked_connection_timeout = settings.rpc_timeout
        if heartbeat:
            param.heartbeat = heartbeat
    return params


def connect(settings: Settings, name: str, stopping: threading.Event,
            patience: float | None = None, heartbeat: int | None = None) -> pika.BlockingConnection:
    """Open a blocking connection to the first broker that answers, retrying the whole list with
    backoff until one does, ``stopping`` is set, or ``patience`` seconds have passed."""
    params = parameters(settings, name, heartbeat)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((AMQPConnectionError, OSError)),
        wait=tenacity.wait_exponential(multiplier=0.1, max=5),
        stop=tenacity.stop_when_event_set(stopping) | tenacity.stop_after_delay(patience or float("inf")),
        sleep=stopping.wait,  # type: ignore[arg-type]  # its bool is ignored
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(pika.BlockingConnection, params)


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    """Log a failed attempt in one line with its cause. pika's own lines for it (a dozen and a
    traceback, which runtime.logs drops) say no more, and the exception's text is empty: the
    cause is in its args."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    cause = "; ".join(str(arg) for arg in getattr(exc, "args", ())) or repr(exc)
    log.warning("cannot connect to the broker (%s): retrying in %.1f s", cause,
                retry_state.next_action.sleep if retry_state.next_action else 0)


def tick(connection: pika.BlockingConnection, seconds: float) -> None:
    """Make ``connection.process_data_events(time_limit=None)`` return at least every ``seconds``:
    one timer, armed again each time it fires.

    A ``time_limit`` per call makes a timer and cancels it, and pika keeps a cancelled timer until it
    is due, then wakes its loop for nothing: a consumer fed one message every 4 ms woke 1.7 times a
    message and spent 223-244 µs of CPU on each (190 µs with the cancelled timers dropped)."""
    connection.call_later(seconds, lambda: tick(connection, seconds))


def call_soon(connection: pika.BlockingConnection, callback: Callable[[], object]) -> bool:
    """Have ``connection``'s own thread run ``callback`` (pika is not thread-safe); False if the broker
    has closed the connection and its thread has not noticed it yet, so pika refused the callback
    (uncaught, that race once made a trade in a broker restart a 500)."""
    try:
        connection.add_callback_threadsafe(callback)
        return True
    except AMQPError:
        return False


def declare_queue(channel: Any, settings: Settings, service: str, single_active: bool = False) -> str:
    """Declare a service's request queue, dead-lettering rejected and expired requests;
    ``single_active`` makes RabbitMQ deliver to one consumer at a time (the others wait)."""
    queue = settings.queue(service)
    arguments: dict[str, Any] = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": settings.dead_letter_queue}
    if single_active:
        arguments["x-single-active-consumer"] = True
    if settings.queue_type == "quorum":
        # Replicated to every node. Dead-lettering is at-least-once only with reject-publish, which
        # without a length limit rejects nothing.
        kind = {"x-queue-type": "quorum"}
        arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    else:
        kind = {}
    _declare(channel, settings.dead_letter_queue, {**kind, "x-max-length": 10000})
    _declare(channel, queue, {**kind, **arguments})
    return queue


def _declare(channel: Any, queue: str, arguments: dict[str, Any]) -> None:
    try:
        channel.queue_declare(queue, durable=True, arguments=arguments)
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        raise QueueMismatch(
            f"queue {queue} exists with other arguments than {arguments} (QUEUE_TYPE changed?); a queue "
            f"cannot change type: delete it (rabbitmqctl delete_queue {queue}) or set QUEUE_TYPE back. "
            f"Broker said: {exc.reply_text}") from None

"""A lock held through RabbitMQ, for setup that processes starting together must do one at a time.

The lock is a queue with a single active consumer. A process that wants it subscribes, then
publishes one message, so the queue is not empty while anyone waits; RabbitMQ delivers only to
the active consumer, which holds the lock from its first delivery until it cancels (or its
connection dies), and then makes the next subscriber active. Nothing about it closes a channel
or nacks a message, so waiting logs nothing. The queue goes away a minute after its last use.
"""
import contextlib
import threading
from collections.abc import Iterator

from pika import BlockingConnection

RETRY = 0.05  # seconds between looks while another process holds the lock


@contextlib.contextmanager
def held(connection: BlockingConnection, name: str, stopping: threading.Event) -> Iterator[None]:
    """Hold the lock ``name`` for the block, on a channel of its own; give up once ``stopping``."""
    channel = connection.channel()
    channel.queue_declare(name, arguments={"x-single-active-consumer": True, "x-expires": 60_000})
    channel.basic_qos(prefetch_count=1)
    turn: list[int] = []
    tag = channel.basic_consume(name, lambda _ch, delivery, _props, _body: turn.append(delivery.delivery_tag))
    channel.basic_publish("", name, b"")
    while not turn:
        if stopping.is_set():
            raise InterruptedError(f"stopped while waiting for the lock {name}")
        connection.process_data_events(time_limit=RETRY)
    try:
        yield
    finally:
        channel.basic_ack(turn[0])  # one message out for the one put in
        channel.basic_cancel(tag)
        channel.close()

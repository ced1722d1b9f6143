"""The order stream on RabbitMQ: its entries, how a replica declares it, and the checks that it is
still the stream the replica read (``Diverged`` if not)."""
import logging
import time

import pika
from pika.exceptions import ChannelClosedByBroker

from broker import lock
from broker.messages import unique_id
from runtime.lifecycle import Fatal

log = logging.getLogger(__name__)
STREAM = "orders"
ORDER, ORDERS, SYNC = "order", "orders", "sync"  # an entry's type: one order (before batching), several, a marker
# Stream entries in flight to a reader (streams need a prefetch). 16 once made the leader's round
# trip shorter, but not in later sittings (trade p50 at one connection 5.19 against 5.14 ms, p99
# 18.1 against 11.7; docs/design.md). A reader behind reads rounds back to back.
READ_AHEAD = 500


class Diverged(Fatal):
    """The order log holds a different order than the stream at the same number."""


def stream_is_gone(exc):
    """Whether a refused passive declare means no such queue, not one whose node is down or starting.

    RabbitMQ answers 404 to both; only the reply text tells "no queue 'x' in vhost" from "home node
    of durable queue 'x' is down or inaccessible", which a restarting broker gives for a while."""
    return exc.reply_code == 404 and "no queue" in exc.reply_text


def declare(connection, stream, max_age, position, stopping):
    """A channel on ``stream``, made if missing with ``max_age`` as its retention, for a replica
    that has applied it up to ``position``.

    A replica that has read none of it declares it, holding the stream's lock: RabbitMQ answers a
    declare that races the one making the stream before the stream has started, and subscribing
    then fails (406 "no replica on the local node", or 541), so replicas starting together take
    turns. An existing stream keeps its own retention (declaring it with another is refused: it
    is changed with a policy, README). A replica that has read a stream which is gone (deleted,
    or a broker that lost its data) does not make a new one to lead on, so it only looks."""
    channel = connection.channel()
    if position > 0:
        try:
            channel.queue_declare(stream, passive=True)
            return channel
        except ChannelClosedByBroker as exc:
            if not stream_is_gone(exc):
                raise  # e.g. its node still starting: reconnect and look again
        raise Diverged(f"the order stream {stream} is gone, and this replica has read "
                       f"{position} entries of it (deleted? a broker that lost its data?)")
    with lock.held(connection, f"{stream}.lock", stopping):
        try:
            channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream", "x-max-age": max_age})
        except ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            log.warning("the order stream %s keeps its own retention, not ORDER_STREAM_MAX_AGE=%s (%s)",
                        stream, max_age, exc.reply_text)
            channel = connection.channel()
            channel.queue_declare(stream, passive=True)
    return channel


def check_length(connection, stream, position, app_id, timeout):
    """Stop (Diverged) if ``stream`` ends before ``position``: a broker that lost its tail (stream
    segments are not fsynced). A sync marker appended now gets the stream's next offset, which a
    consumer from the stream's last chunk reads back; AMQP has no other way to tell a length."""
    channel, marker, seen = connection.channel(), unique_id(), {}
    channel.basic_publish("", stream, b"{}", pika.BasicProperties(
        type=SYNC, message_id=marker, app_id=app_id, delivery_mode=2))
    channel.basic_qos(prefetch_count=READ_AHEAD)

    def on_entry(_channel, delivery, props, _body):
        seen[props.message_id] = int(props.headers["x-stream-offset"])
        channel.basic_ack(delivery.delivery_tag)  # credit for the rest of the last chunk

    channel.basic_consume(stream, on_entry, arguments={"x-stream-offset": "last"})
    ends = time.monotonic() + timeout
    # "last" is the last chunk when the consumer attaches, which other writers may already have put
    # after the marker's: an entry at the position or later tells as well that the stream reaches it.
    while marker not in seen and max(seen.values(), default=-1) < position:
        if time.monotonic() > ends:
            raise ConnectionError("no answer from the order stream in time")
        connection.process_data_events(time_limit=0.1)
    channel.close()
    if (end := max(seen.values())) < position:
        raise Diverged(f"the order stream ends at offset {end}, before this replica's position "
                       f"{position}: the broker lost entries this replica applied (an OS crash of a "
                       f"node?); copy a replica's data directory that matches the stream, or start over")

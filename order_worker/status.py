"""Each order replica announces itself every second on the events exchange, for those watching.

``order.status`` (routing key ``order.status``, AMQP ``type`` ``order.status``) has the JSON body
``{"replica": 0, "leading": true, "position": 42, "orders": 40}``: whether it leads, the offset
of the next order stream entry it applies, and the orders in its log. A replica that stopped or
is cut off stops announcing; the frontend's page shows it as silent.
"""
import logging

from pika.exceptions import AMQPError

from broker.connection import connect
from broker.events import ORDER_STATUS, ORDER_STATUS_EVERY, declare_exchange
from broker.messages import encode, properties

log = logging.getLogger(__name__)


def status(settings, replicated):
    """This replica's status, as announced."""
    return {"replica": settings.replica_id, "leading": replicated.leading,
            "position": replicated.position, "orders": replicated.next_number}


def announce(settings, replicated, stopping):
    """Publish this replica's status every ORDER_STATUS_EVERY seconds until ``stopping``, reconnecting as needed."""
    name = f"order-{settings.replica_id}"
    while not stopping.is_set():
        try:
            connection = connect(settings, f"{name}.status", stopping)
        except (AMQPError, OSError):
            return  # only reraised once stopping
        try:
            channel = connection.channel()
            declare_exchange(channel, settings)
            while not stopping.is_set():
                body = encode(status(settings, replicated))
                channel.basic_publish(settings.events_exchange, ORDER_STATUS, body, properties(name, ORDER_STATUS))
                connection.process_data_events(time_limit=ORDER_STATUS_EVERY)  # heartbeats, and the pause
        except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
            log.warning("lost the connection for status announcements: %r", exc)
            stopping.wait(ORDER_STATUS_EVERY)
        finally:
            if connection.is_open:
                connection.close()

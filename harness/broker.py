"""The broker side of a stack: what a namespace holds, deleted in one place."""
import pika
from pika.exceptions import AMQPConnectionError

from broker.connection import parameters
from runtime.settings import Settings

# Every queue a stack's services declare: the workers' request queues, the order stream, dead letters.
QUEUES = ("catalog", "order", "orders")


def delete_namespace(settings: Settings) -> None:
    """Delete the queues and the events exchange of ``settings.namespace``; without a broker there are none."""
    try:
        connection = pika.BlockingConnection(parameters(settings))
    except AMQPConnectionError:
        return
    with connection:
        channel = connection.channel()
        for queue in (*map(settings.queue, QUEUES), settings.dead_letter_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(settings.events_exchange)

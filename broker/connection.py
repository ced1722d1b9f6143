"""Connecting to RabbitMQ with bounded exponential backoff, and declaring the queues."""
import logging

import pika
import tenacity
from pika.exceptions import AMQPConnectionError

log = logging.getLogger(__name__)


def connect(settings, name, stopping, patience=None):
    """Open a blocking connection, retrying with backoff until it works, ``stopping`` is set,
    or ``patience`` seconds have passed."""
    params = pika.URLParameters(settings.amqp_url)
    params.client_properties = {"connection_name": f"{settings.namespace}.{name}"}
    params.connection_attempts = 1
    params.blocked_connection_timeout = settings.rpc_timeout
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((AMQPConnectionError, OSError)),
        wait=tenacity.wait_exponential(multiplier=0.1, max=5),
        stop=tenacity.stop_when_event_set(stopping) | tenacity.stop_after_delay(patience or float("inf")),
        sleep=stopping.wait,
        before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(pika.BlockingConnection, params)


def declare_queue(channel, settings, service, single_active=False):
    """Declare a service's request queue, dead-lettering rejected and expired requests;
    ``single_active`` makes RabbitMQ deliver to one consumer at a time (the others wait)."""
    channel.queue_declare(settings.dead_letter_queue, durable=True, arguments={"x-max-length": 10000})
    queue = settings.queue(service)
    arguments = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": settings.dead_letter_queue,
    }
    if single_active:
        arguments["x-single-active-consumer"] = True
    channel.queue_declare(queue, durable=True, arguments=arguments)
    return queue

"""RPC floor: a bare pika echo server on Direct Reply-to, and processes timing sequential calls to it."""
import contextlib
import multiprocessing
import time

import pika

from broker.connection import parameters
from client.stats import summarise

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
BODY = b'{"name": "GameStart"}'


def _channel(settings):
    connection = pika.BlockingConnection(parameters(settings))
    channel = connection.channel()
    channel.queue_declare(settings.queue("echo"), auto_delete=True)
    return connection, channel


def serve(settings):
    """Answer every request on the echo queue with its own body, acking after the reply like the workers."""
    _, channel = _channel(settings)

    def echo(ch, delivery, props, body):
        ch.basic_publish("", props.reply_to, body, pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(delivery.delivery_tag)

    channel.basic_qos(prefetch_count=settings.prefetch)
    channel.basic_consume(settings.queue("echo"), echo)
    channel.start_consuming()


@contextlib.contextmanager
def echo_server(settings):
    """Run ``serve`` in a child process for the duration of the block, which gets the process."""
    process = multiprocessing.Process(target=serve, args=(settings,), daemon=True)
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join()


def calls(settings, seconds):
    """Make sequential echo calls for ``seconds``; return the client's record of their latencies."""
    connection, channel = _channel(settings)
    replies = []
    channel.basic_consume(DIRECT_REPLY_TO, lambda ch, method, props, body: replies.append(body), auto_ack=True)
    record = {"latencies": [], "statuses": {}, "seconds": seconds}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        channel.basic_publish("", settings.queue("echo"), BODY, pika.BasicProperties(reply_to=DIRECT_REPLY_TO))
        while not replies:
            connection.process_data_events(time_limit=None)
        replies.pop()
        record["latencies"].append((time.perf_counter() - start) * 1000)
    connection.close()
    return record


def measure(settings, connections, seconds):
    """Echo calls on ``connections`` connections at once (one process each): ``{"echo": summary}``."""
    with multiprocessing.Pool(connections) as pool:
        records = pool.starmap(calls, [(settings, seconds)] * connections)
    return {"echo": summarise(records)}

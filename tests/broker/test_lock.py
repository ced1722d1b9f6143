"""The RabbitMQ lock, and the order stream that replicas starting together make one at a time."""
import contextlib
import logging
import threading
from dataclasses import replace

import pika

from broker import lock
from broker.connection import connect, parameters
from ledger import stream


def test_one_holder_at_a_time_and_a_dead_holder_lets_go(settings):
    stopping, inside, most = threading.Event(), [], []
    name = f"{settings.namespace}.lock"

    def hold():
        with connect(settings, "tester", stopping) as connection, lock.held(connection, name, stopping):
            inside.append(1)
            most.append(len(inside))
            stopping.wait(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(most) == 4 and max(most) == 1

    # A holder whose connection dies gives the lock to the next.
    holding, dies, taken = threading.Event(), threading.Event(), threading.Event()

    def die_holding():
        connection = connect(settings, "tester", stopping)
        with contextlib.suppress(pika.exceptions.AMQPError), lock.held(connection, name, stopping):
            holding.set()
            dies.wait()
            connection.close()

    def take():
        with connect(settings, "tester", stopping) as connection, lock.held(connection, name, stopping):
            taken.set()

    threading.Thread(target=die_holding).start()
    assert holding.wait(5)
    threading.Thread(target=take).start()
    assert not taken.wait(0.5)
    dies.set()
    assert taken.wait(5)


def test_replicas_starting_together_subscribe_to_the_new_stream_quietly(settings, caplog):
    """Without the lock about half of these rounds had a subscribe refused (406 "no replica on the
    local node", or 541 INTERNAL_ERROR), each logged by pika at WARNING or ERROR."""
    caplog.set_level(logging.INFO)
    stopping, outcomes = threading.Event(), []
    for round_ in range(6):
        settings_ = replace(settings, namespace=f"{settings.namespace}-{round_}")
        together = threading.Barrier(3)

        def start(replica, settings_=settings_, together=together):
            queue = settings_.queue(stream.STREAM)
            try:
                with connect(settings_, f"order-{replica}.stream", stopping) as connection:
                    together.wait()
                    channel = stream.declare(connection, queue, settings_.order_stream_max_age, 0, stopping)
                    channel.basic_qos(prefetch_count=10)
                    channel.basic_consume(queue, lambda *_: None, arguments={"x-stream-offset": 0})
                    connection.process_data_events(time_limit=0.1)
                outcomes.append("subscribed")
            except pika.exceptions.AMQPError as exc:
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=start, args=(replica,)) for replica in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pika.BlockingConnection(parameters(settings_)) as connection:
            connection.channel().queue_delete(settings_.queue("orders"))
    assert outcomes == ["subscribed"] * 18
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

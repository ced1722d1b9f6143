"""A connection's tick against the real broker: the loop wakes by it, and with no timer per call."""
import threading
import time

from broker.connection import connect, tick


def test_a_ticking_connection_returns_from_waiting_for_events_by_its_tick(settings):
    connection = connect(settings, "tester", threading.Event())
    try:
        tick(connection, 0.05)
        started = time.monotonic()
        for _ in range(3):  # nothing arrives: each wait ends at the next tick
            connection.process_data_events(time_limit=None)
        assert 0.1 <= time.monotonic() - started < 1
    finally:
        connection.close()


def test_waiting_by_the_tick_leaves_no_timers_behind(settings):
    connection = connect(settings, "tester", threading.Event())
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    arrived = []
    channel.basic_consume(queue, lambda *message: arrived.append(message), auto_ack=True)
    try:
        tick(connection, 0.2)
        for n in range(50):  # each message ends a wait before the tick: with a time_limit, a timer each
            channel.basic_publish("", queue, b"x")
            while len(arrived) <= n:
                connection.process_data_events(time_limit=None)
        # pika's own timers (heartbeats) and the tick's, not one left by each wait. Private, but the
        # count of timers is what the tick is for.
        assert len(connection._impl.ioloop._timer._timeout_heap) < 10
    finally:
        connection.close()

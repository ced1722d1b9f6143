"""bench.broker's Erlang against the local broker: it finds this test's own connection at work."""
import threading

from bench.broker import by_role, processes
from broker.connection import connect


def test_the_local_brokers_processes_name_a_busy_connection(rabbitmqctl, settings):
    connection, done = connect(settings, "profiled", threading.Event()), threading.Event()
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        rows = []
        counting = threading.Thread(target=lambda: (rows.extend(processes(1)), done.set()))
        counting.start()
        while not done.is_set():  # busy for the whole window
            channel.basic_publish("", queue, b"x")
            connection.process_data_events(time_limit=0)
        counting.join()
    finally:
        connection.close()
    roles = by_role(rows, settings.namespace, leader="none")
    assert roles["profiled"] > 0 and roles[queue] > 0

"""Log setup: one format, and pika's lines that the services say better kept out of the logs."""
import logging
import threading

import pytest
from pika.exceptions import AMQPConnectionError

from broker.connection import connect
from harness.stack import free_port
from runtime.logs import setup_logging
from runtime.settings import Settings


def test_a_stream_readers_expected_close_is_dropped_and_other_pika_errors_are_kept(capsys, root_logger):
    setup_logging("test")
    setup_logging("test")  # twice, as tests and restarts do: still one filter
    pika_log = logging.getLogger("pika.adapters.blocking_connection")
    pika_log.error("Unexpected connection close detected: %r", "ConnectionClosedByBroker: (540) \"NOT_IMPLEMENTED - "
                   "basic.nack and basic.reject not supported by stream queues queue 'x.orders' in vhost '/'\"")
    pika_log.error("Unexpected connection close detected: %r", "ConnectionClosedByBroker: (320) 'CONNECTION_FORCED'")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "CONNECTION_FORCED" in lines[0] and " test [" in lines[0]
    assert len(pika_log.filters) == 1


def test_a_broker_that_refuses_connections_is_one_line_an_attempt_with_its_cause(capsys, root_logger):
    setup_logging("test")
    settings = Settings.from_env({"AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"})
    with pytest.raises(AMQPConnectionError):
        connect(settings, "test", threading.Event(), patience=0.5)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all("WARNING broker.connection: cannot connect to the broker (" in line
                                   and "Connection refused" in line for line in lines), lines

"""Log setup: one format, and pika's expected close of a stream reader kept out of the logs."""
import logging

from runtime.logs import setup_logging


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

"""Log lines with time, service, thread and the request id that follows a request across services."""
import contextvars
import logging

request_id = contextvars.ContextVar("request_id", default="-")


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id.get()
        return True


class _PikaNoiseFilter(logging.Filter):
    """Drops pika's ERRORs that say what the services log better themselves:

    - a failed connection attempt (with a traceback), which ``broker.connection`` logs in one line
      with its cause, as pika's ``connection_workflow`` and ``io_services_utils`` would in five more;
    - the one close of a stream reader that is expected: closing a channel rejects the deliveries
      that arrive meanwhile, and RabbitMQ answers a reject on a stream by closing the connection
      (540 NOT_IMPLEMENTED). A reader only closes so on a stop or a reconnect, and the consumer
      loop logs every failure of a live connection itself."""

    NOISE = ("not supported by stream queues", "Connection workflow failed", "Error in _create_connection()")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(noise in record.getMessage() for noise in self.NOISE)


_PIKA_NOISE = _PikaNoiseFilter()


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr in one legible format."""
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(service)s [%(threadName)s] rid=%(request_id)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))
    # waitress warns of every request that waits for a thread: at 64 connections on 32 threads,
    # nearly one line a request. The frontend's bazaar_http_requests_queued gauge says it instead.
    logging.getLogger("waitress.queue").setLevel(max(logging.ERROR, root.level))
    logging.getLogger("pika.adapters.blocking_connection").addFilter(_PIKA_NOISE)
    # Sockets that fail to connect or break: the services log each attempt and each lost connection.
    for name in ("pika.adapters.utils.connection_workflow", "pika.adapters.utils.io_services_utils"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

"""The one reconnecting consumer loop, which the RPC server, the event subscriber and the stream reader share."""
import contextlib
import logging

from pika import BlockingConnection
from pika.exceptions import AMQPError

from broker.connection import connect, tick
from runtime.lifecycle import Fatal, Loop
from runtime.metrics import CONSUMERS
from runtime.settings import Settings

log = logging.getLogger(__name__)
ROUND = 0.2  # seconds a consumer pumps its connection before it looks for a stop


class Consumer(Loop):
    """Connects with backoff, ``subscribe``s, pumps the connection until stopped, and reconnects
    whenever the connection fails; a Fatal error ends it as its failure. The ``bazaar_consumers``
    gauge counts its subscribed connections, so a launcher can tell when it consumes.

    Each of ``threads`` threads keeps a connection of its own (pika is not thread-safe), named
    ``<namespace>.<connection_name>`` (by default its ``name``) in the management UI.
    Subclasses say what to consume in ``subscribe`` and may do more each round (``pump``),
    before closing (``drain``) and once a connection is lost (``disconnected``).
    """

    retry_pause = 0.0  # seconds to wait before reconnecting after a failure
    heartbeat: int | None = None  # seconds, instead of the broker's 60 s, for a connection known dead soon

    def __init__(self, settings: Settings, name: str, threads: int = 1, connection_name: str | None = None) -> None:
        super().__init__(name, threads)
        self.settings, self.connection_name = settings, connection_name or name

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                connection = connect(self.settings, self.connection_name, self.stopping, heartbeat=self.heartbeat)
            except (AMQPError, OSError):
                return  # only reraised once stopping
            subscribed = False
            try:
                tick(connection, ROUND)
                self.subscribe(connection)
                subscribed = True
                CONSUMERS.labels(self.name).inc()
                while not self.stopping.is_set():
                    self.pump(connection)
                self.drain(connection)
            except Fatal as exc:
                self.fail(exc)
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                log.warning("%s lost its connection to the broker: %r", self.name, exc)
                self.stopping.wait(self.retry_pause)
            finally:
                if subscribed:
                    CONSUMERS.labels(self.name).dec()
                self.disconnected()
                if connection.is_open:
                    # Closing may nack deliveries in flight, which a stream refuses by closing the
                    # connection: that is the end wanted anyway.
                    with contextlib.suppress(AMQPError):
                        connection.close()

    def subscribe(self, connection: BlockingConnection) -> None:
        """Declare what is consumed and start consuming it on ``connection``."""
        raise NotImplementedError

    def pump(self, connection: BlockingConnection) -> None:
        """One round: handle what arrives, or return at the next tick (every ROUND seconds)."""
        connection.process_data_events(time_limit=None)

    def drain(self, connection: BlockingConnection) -> None:
        """Finish what is in hand before the connection closes on a stop."""

    def disconnected(self) -> None:
        """The connection is lost or closed: forget what depended on it."""

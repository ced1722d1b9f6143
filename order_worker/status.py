"""Each order replica announces itself (``order.status``, trading/status.py) every second, on a
connection of its own, for those watching."""
import contextlib
import logging

from pika.exceptions import AMQPError

from broker.connection import connect
from broker.events import declare_exchange
from runtime.lifecycle import Loop
from trading.status import ORDER_STATUS_EVERY, order_status

log = logging.getLogger(__name__)


class Announcer(Loop):
    """Publishes ``replicated``'s status every ORDER_STATUS_EVERY seconds, reconnecting as needed."""

    def __init__(self, settings, replicated):
        super().__init__("status")
        self.settings, self.replicated = settings, replicated

    def run(self):
        while not self.stopping.is_set():
            try:
                connection = connect(self.settings, f"order-{self.settings.replica_id}.status", self.stopping)
            except (AMQPError, OSError):
                return  # only reraised once stopping
            try:
                channel = connection.channel()
                declare_exchange(channel, self.settings)
                while not self.stopping.is_set():
                    replicated = self.replicated
                    channel.basic_publish(*order_status(self.settings, replicated.leading, replicated.position,
                                                        replicated.next_number))
                    connection.process_data_events(time_limit=ORDER_STATUS_EVERY)  # heartbeats, and the pause
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                log.warning("lost the connection for status announcements: %r", exc)
                self.stopping.wait(ORDER_STATUS_EVERY)
            finally:
                if connection.is_open:
                    with contextlib.suppress(AMQPError):
                        connection.close()

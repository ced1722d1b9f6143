"""Events: a topic exchange per namespace that workers publish to and anyone may watch.

``stock.changed`` is a public contract (see README and docs/design.md): routing key
``stock.<name>``, AMQP ``type`` ``stock.changed``, JSON body
``{"name", "price", "quantity", "trading_volume", "seq"}``, where ``seq`` is the catalog's
sequence number of the trade that produced this state.
"""
import json
import logging
import threading

from pika.exceptions import AMQPError

from broker import tracing
from broker.connection import connect
from broker.messages import Publication, encode, properties

log = logging.getLogger(__name__)
STOCK_CHANGED = "stock.changed"
STOCK_FIELDS = ("name", "price", "quantity", "trading_volume", "seq")


def declare_exchange(channel, settings):
    channel.exchange_declare(settings.events_exchange, "topic", durable=True)


def stock_changed(settings, app_id, stock):
    """The event announcing ``stock`` (a mapping with STOCK_FIELDS) as it is after a trade."""
    body = {key: stock[key] for key in STOCK_FIELDS}
    return Publication(settings.events_exchange, f"stock.{stock['name']}", encode(body),
                       properties(app_id, STOCK_CHANGED))


class Subscriber:
    """Hands events to ``on_event(type, body)`` from a thread of its own, reconnecting with backoff.

    The queue is exclusive, auto-deleted and server-named: every subscriber gets each event once,
    and nothing piles up while it is away, so it misses what is published while disconnected.
    ``on_connected`` runs once the queue is bound (drop whatever earlier events built up);
    ``on_disconnected`` runs as soon as the connection is lost (stop trusting that state).
    Binding keys default to every stock (``stock.#``: a name may contain dots).
    """

    def __init__(self, settings, name, on_event, on_connected=None, on_disconnected=None,
                 keys=("stock.#",)):
        self.settings, self.name, self.keys = settings, name, keys
        self.on_event = on_event
        self.on_connected = on_connected or (lambda: None)
        self.on_disconnected = on_disconnected or (lambda: None)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._consuming = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        """Stop consuming and close the connection."""
        with self._lock:
            self._stopping.set()
            if self._consuming:
                connection, channel = self._consuming
                connection.add_callback_threadsafe(channel.stop_consuming)
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stopping.is_set():
            try:
                connection = connect(self.settings, self.name, self._stopping)
            except (AMQPError, OSError):
                return  # only reraised once stopping
            try:
                channel = connection.channel()
                declare_exchange(channel, self.settings)
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                for key in self.keys:
                    channel.queue_bind(queue, self.settings.events_exchange, key)
                channel.basic_consume(queue, self._on_message, auto_ack=True)
                with self._lock:
                    if self._stopping.is_set():
                        break
                    self._consuming = connection, channel
                self.on_connected()
                channel.start_consuming()
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                log.warning("lost the events connection: %r", exc)
            finally:
                with self._lock:
                    self._consuming = None
                self.on_disconnected()
                if connection.is_open:
                    connection.close()

    def _on_message(self, _channel, _method, props, body):
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("dropping malformed event %r from %s: %s", body[:200], props.app_id, exc)
            return
        exchange = self.settings.events_exchange
        with tracing.span(f"{exchange} receive", tracing.SpanKind.CONSUMER, exchange, props.headers):
            self.on_event(props.type, event)

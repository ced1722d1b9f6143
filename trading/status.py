"""The ``order.status`` event, built and parsed here only.

Each order replica announces itself every ORDER_STATUS_EVERY seconds on the events exchange:
routing key and AMQP ``type`` ``order.status``, ``app_id`` ``order-<id>``, JSON body
``{"replica": 0, "leading": true, "position": 42, "orders": 40}``: whether it leads, the offset of
the next order stream entry it applies, and the orders in its log. A replica that stopped or is
cut off stops announcing: whoever watches (the web page) shows it as silent.
"""
from collections.abc import Mapping
from typing import Any

from broker.messages import Publication, encode, properties
from runtime.settings import Settings

ORDER_STATUS = "order.status"
ORDER_STATUS_EVERY = 1.0  # seconds between a replica's announcements
STATUS_FIELDS = {"replica": int, "leading": bool, "position": int, "orders": int}


def order_status(settings: Settings, leading: bool, position: int, orders: int) -> Publication:
    """The event announcing this replica (settings.replica_id) as it is now."""
    body = {"replica": settings.replica_id, "leading": leading, "position": position, "orders": orders}
    return Publication(settings.events_exchange, ORDER_STATUS, encode(body),
                       properties(f"order-{settings.replica_id}", ORDER_STATUS))


def parse_order_status(kind: str, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The status (STATUS_FIELDS) a well-formed order.status event announces; None for anything else."""
    if kind != ORDER_STATUS or not all(type(event.get(key)) is type_ for key, type_ in STATUS_FIELDS.items()):
        return None
    return {key: event[key] for key in STATUS_FIELDS}

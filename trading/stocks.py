"""The ``stock.changed`` event, built and parsed here only.

It is a public contract (see README and docs/design.md): routing key ``stock.<name>``, AMQP
``type`` ``stock.changed``, JSON body ``{"name", "price", "quantity", "trading_volume", "seq"}``,
where ``seq`` is the catalog's sequence number of the trade that produced this state.
"""
from collections.abc import Mapping
from typing import Any

from broker.messages import Publication, encode, properties
from runtime.settings import Settings

STOCK_CHANGED = "stock.changed"
STOCK_FIELDS = ("name", "price", "quantity", "trading_volume", "seq")


def stock_changed(settings: Settings, app_id: str, stock: Mapping[str, Any]) -> Publication:
    """The event announcing ``stock`` (a mapping with STOCK_FIELDS) as it is after a trade."""
    body = {key: stock[key] for key in STOCK_FIELDS}
    return Publication(settings.events_exchange, f"stock.{stock['name']}", encode(body),
                       properties(app_id, STOCK_CHANGED))


def parse_stock_changed(kind: str, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stock (STOCK_FIELDS) a well-formed stock.changed event announces; None for anything else."""
    if kind != STOCK_CHANGED or not set(STOCK_FIELDS) <= event.keys():
        return None
    if not isinstance(event["name"], str) or type(event["seq"]) is not int:
        return None
    return {key: event[key] for key in STOCK_FIELDS}

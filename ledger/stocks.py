"""The stock table: every replica derives it from the order stream, applying the orders it accepts."""
from collections.abc import Iterator
from typing import NamedTuple

# The catalog every stream starts from: a replica that reads a stream from its first entry starts here.
DEFAULT_PRICES = {
    "GameStart": 15.99, "FishCo": 11.50, "BoarCo": 22.75, "MenhirCo": 8.40, "AsterixCorp": 31.20,
    "ObelixInc": 27.05, "DogmatixLtd": 5.60, "Getafix": 44.10, "Vitalstatix": 19.95, "Cacofonix": 3.25,
}
DEFAULT_QUANTITY = 100


class Stock(NamedTuple):
    """A stock after its last trade, whose ``seq`` (transaction number + 1) it carries; 0 before any."""
    name: str
    price: float
    quantity: int
    trading_volume: int
    seq: int = 0


def change(order_type, quantity):
    """How much a trade changes a stock's quantity: a buy takes from it, a sell adds to it."""
    return -quantity if order_type == "buy" else quantity


class Stocks:
    """The stock table as of an order stream position; ``apply`` an accepted order to move it on."""

    def __init__(self, rows=None):
        rows = rows or [(name, price, DEFAULT_QUANTITY, 0, 0) for name, price in DEFAULT_PRICES.items()]
        self._stocks = {row[0]: Stock(*row) for row in rows}

    def __iter__(self) -> Iterator[Stock]:
        return iter(list(self._stocks.values()))

    def get(self, name):
        """The stock called ``name``, or None."""
        return self._stocks.get(name)

    def available(self, name, order_type, quantity, reserved=0):
        """Whether the stock exists and, with ``reserved`` (the change of orders in flight), has enough
        left for this trade: the rule every replica applies to every order in the stream."""
        stock = self._stocks.get(name)
        return stock is not None and stock.quantity + reserved + change(order_type, quantity) >= 0

    def apply(self, order):
        """Apply an accepted order (``available`` said yes)."""
        stock = self._stocks[order.name]
        self._stocks[order.name] = stock._replace(quantity=stock.quantity + change(order.type, order.quantity),
                                                  trading_volume=stock.trading_volume + order.quantity,
                                                  seq=order.number + 1)

    def rows(self):
        """The table as lists, for a snapshot (``Stocks(rows)`` reads it back)."""
        return [list(stock) for stock in self._stocks.values()]

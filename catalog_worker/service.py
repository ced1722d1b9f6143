"""The catalog's RPC methods."""
from broker.orders import parse_int, parse_trade
from broker.messages import RpcError

SERVICE = "catalog"


class CatalogService:
    """Answers lookups and applies trades sent by the order worker."""

    def __init__(self, store):
        self.store = store
        self.handlers = {"lookup": self.lookup, "trade": self.trade, "trades_after": self.trades_after}

    def lookup(self, args):
        name = args.get("name")
        if not isinstance(name, str):
            raise RpcError(400, "'name' must be a string")
        stock = self.store.lookup(name)
        return {"name": stock.name, "price": stock.price, "quantity": stock.quantity}

    def trade(self, args):
        return self.store.trade(*parse_trade(args))._asdict()

    def trades_after(self, args):
        """Trades applied after sequence number ``seq``, so the order worker can log any it missed."""
        return [t._asdict() for t in self.store.trades_after(parse_int(args, "seq"))]

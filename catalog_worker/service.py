"""The catalog's RPC methods."""
from broker import Reply
from broker.messages import RpcError
from trading.orders import parse_int, parse_trade
from trading.stocks import stock_changed

SERVICE = "catalog"


class CatalogService:
    """Answers lookups and applies trades sent by the order worker, announcing each as an event."""

    def __init__(self, store, settings):
        self.store, self.settings = store, settings
        self.handlers = {"lookup": self.lookup, "trade": self.trade, "trades_after": self.trades_after,
                         "list": self.list}

    def lookup(self, args):
        """The stock, with ``seq`` so a cache can order this answer against events."""
        name = args.get("name")
        if not isinstance(name, str):
            raise RpcError(400, "'name' must be a string")
        stock = self.store.lookup(name)
        return {"name": stock.name, "price": stock.price, "quantity": stock.quantity, "seq": stock.seq}

    def trade(self, args):
        # after_seq: the order worker asks for a new trade of an id whose earlier trade it has numbered.
        after_seq = parse_int(args, "after_seq") if "after_seq" in args else 0
        trade = self.store.trade(*parse_trade(args), after_seq)
        # The stock as it is now: after this trade or a later one, with that trade's seq. A repeated
        # trade id announces it again, which is harmless and covers an event lost with a reply.
        stock = self.store.lookup(trade.name)._asdict()
        return Reply(trade._asdict(), (stock_changed(self.settings, SERVICE, stock),))

    def list(self, args):
        """Every stock with its trading volume and ``seq``, for the frontend's stock board."""
        return [stock._asdict() for stock in self.store.stocks()]

    def trades_after(self, args):
        """Trades applied after sequence number ``seq``, so the order worker can log any it missed."""
        return [t._asdict() for t in self.store.trades_after(parse_int(args, "seq"))]

"""The catalog's RPC methods: lookups and the listing, answered from this replica's stock table."""
from broker.messages import RpcError, deadline_left
from trading.orders import parse_int

SERVICE = "catalog"


class CatalogService:
    """Answers from a read replica of the order stream, once it has applied what the caller has seen.

    ``min_seq`` (optional) is the newest trade seq the caller knows of: the answer waits until this
    replica has applied it, so a client never reads a stock older than its own last trade.
    """

    def __init__(self, ledger, settings):
        self.ledger, self.settings = ledger, settings
        self.handlers = {"lookup": self.lookup, "list": self.list}

    def lookup(self, args):
        """The stock, with ``seq`` so a cache can order this answer against events."""
        name = args.get("name")
        if not isinstance(name, str):
            raise RpcError(400, "'name' must be a string")
        self._catch_up(args)
        stock = self.ledger.stocks.get(name)
        if stock is None:
            raise RpcError(404, f"stock {name!r} not found")
        return {"name": stock.name, "price": stock.price, "quantity": stock.quantity, "seq": stock.seq}

    def list(self, args):
        """Every stock with its trading volume and ``seq``, for the frontend's stock board."""
        self._catch_up(args)
        return [stock._asdict() for stock in self.ledger.stocks]

    def _catch_up(self, args):
        min_seq = parse_int(args, "min_seq") if "min_seq" in args else 0
        # Half the time left, so the caller hears why before it gives up.
        if not self.ledger.wait_applied(min_seq, deadline_left(self.settings.rpc_timeout) / 2):
            raise RpcError(503, "this catalog replica has not caught up with the order stream")

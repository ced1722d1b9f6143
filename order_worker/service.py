"""The order worker's RPC methods."""
import contextlib
import logging

from broker import RpcError
from broker.futures import then
from runtime.lifecycle import Loop
from trading.orders import parse_int, parse_trade
from trading.stocks import stock_changed

log = logging.getLogger(__name__)
SERVICE = "order"
PING_EVERY = 1  # seconds between a standby replica's pings of the order queue


class OrderService:
    """Executes each trade once, as an order in the replicated log that every replica applies alike.

    Only the replica RabbitMQ delivers requests to (the leader) answers them, once it has caught
    up on the log: it checks a trade against its own copy of the stocks, proposes it to the stream,
    and answers once the stream has decided it; the ledger announces the stocks it changed.
    """

    def __init__(self, ledger, settings):
        self.ledger, self.settings = ledger, settings
        self.handlers = {"trade": self.trade, "query": self.query, "ping": self.ping}
        self.quick = {"trade": self.trade_now}

    def trade(self, args):
        trade_id, name, order_type, quantity = parse_trade(args)
        self.ledger.lead()
        order = self.ledger.find(trade_id)
        if order is None:
            self.ledger.require_space()  # step down before proposing what this replica could not log
            order = self.ledger.propose(trade_id, name, order_type, quantity)
        return _traded(order, name, order_type, quantity)

    def trade_now(self, args):
        """``trade`` without blocking, while this replica leads: the Future of its reply, or None
        (then ``trade`` runs on a handler thread: to lead first, or after another writer's number)."""
        trade_id, name, order_type, quantity = parse_trade(args)
        if not self.ledger.leading:
            return None
        self.ledger.require_space()
        if (proposal := self.ledger.submit(trade_id, name, order_type, quantity)) is None:
            return None
        # None: another writer took its number; ``trade`` catches up and proposes it again.
        return then(proposal, lambda outcome: outcome and _traded(outcome, name, order_type, quantity))

    def announce(self, stocks):
        """The stock.changed events of ``stocks``, as a commit of the leader's orders left them (the
        ledger publishes them once per commit: one per stock, however many trades changed it)."""
        return [stock_changed(self.settings, SERVICE, stock._asdict()) for stock in stocks]

    def query(self, args):
        self.ledger.lead()  # so a number the previous leader gave out is never a 404 here
        order = self.ledger.get(parse_int(args, "number"))
        if order is None:
            raise RpcError(404, f"order {args['number']} not found")
        return {"number": order.number, "name": order.name, "type": order.type, "quantity": order.quantity}

    def ping(self, args):
        """Answer a health check, taking the lead first: being pinged means RabbitMQ made this
        replica the order queue's active consumer. Not before its stream reader is connected, though,
        which a ping should not wait for: the next ping, a second later, finds it connected."""
        if self.ledger.connected:
            self.ledger.lead()
        return {"service": SERVICE}


def _traded(outcome, name, order_type, quantity):
    """The reply to a trade whose outcome is ``outcome``: its Order, or the RpcError refusing it."""
    if isinstance(outcome, RpcError):
        raise outcome
    if (outcome.name, outcome.type, outcome.quantity) != (name, order_type, quantity):
        raise RpcError(422, "this Idempotency-Key was already used for a different order")
    # catalog_seq lets the frontend's cache drop what this trade made stale.
    return {"transaction_number": outcome.number, "catalog_seq": outcome.catalog_seq}


class Pinger(Loop):
    """Pings the order queue every PING_EVERY seconds while this replica does not lead.

    The queue's active consumer learns that it is active only from a delivery, so without these
    it would take the lead (catch up, show as leading) only at the first trade."""

    def __init__(self, ledger, client, timeout):
        super().__init__("ping", daemon=True)
        self.ledger, self.client, self.timeout = ledger, client, timeout

    def stop(self):
        # Not waited for: a ping in flight at the end has no one left to answer it, and matters to no one.
        self.stopping.set()

    def run(self):
        while not self.stopping.wait(PING_EVERY):
            if not self.ledger.leading:
                # An error means no leader yet, or one that could not catch up: its own log says why.
                with contextlib.suppress(RpcError):
                    self.client.call(SERVICE, "ping", {}, timeout=self.timeout)

"""The order worker's RPC methods, and reconciliation with the catalog."""
import logging
import threading

from broker import RpcError
from runtime.lifecycle import Loop
from trading.orders import parse_int, parse_trade

log = logging.getLogger(__name__)
SERVICE = "order"
RECONCILE_EVERY = 10


class OrderService:
    """Executes each trade once through the catalog and numbers it in the replicated order log.

    The catalog applies a trade and journals it under its trade id before anything else; the
    order log records it afterwards. If the order worker dies or loses the catalog's reply in
    between, ``reconcile`` finds the applied-but-unlogged trades and logs them. Only the replica
    RabbitMQ delivers requests to (the leader) answers them, once it has caught up on the log.
    """

    def __init__(self, log_store, catalog, catalog_timeout):
        self.orders, self.catalog, self.catalog_timeout = log_store, catalog, catalog_timeout
        self.handlers = {"trade": self.trade, "query": self.query}
        self.uncertain = threading.Event()

    def trade(self, args):
        trade_id, name, order_type, quantity = parse_trade(args)
        self._lead()
        order = self.orders.find(trade_id) or self._execute(args)
        if (order.name, order.type, order.quantity) != (name, order_type, quantity):
            raise RpcError(422, "this Idempotency-Key was already used for a different order")
        # catalog_seq lets the frontend's cache drop what this trade made stale.
        return {"transaction_number": order.number, "catalog_seq": order.catalog_seq}

    def _execute(self, args):
        self.orders.require_space()  # refuse before the catalog applies what could not be logged
        try:
            t = self.catalog.call("catalog", "trade", args, timeout=self.catalog_timeout)
            if self.orders.has_seq(t["seq"]) and self.orders.find(t["trade_id"]) is None:
                # The catalog remembers this id for a trade the log numbered and has since forgotten
                # (the window is over): the retry is a new trade. (A concurrent retry of a trade
                # just numbered finds it: the log adds the id before the catalog's number.)
                t = self.catalog.call("catalog", "trade", {**args, "after_seq": t["seq"]},
                                      timeout=self.catalog_timeout)
            return self.orders.record(t["trade_id"], t["name"], t["type"], t["quantity"], t["seq"])
        except RpcError as exc:
            if exc.code in (503, 504, 507):
                self.uncertain.set()  # the catalog may have applied it without a number: reconcile soon
            raise

    def query(self, args):
        self._lead()  # so a number the previous leader gave out is never a 404 here
        order = self.orders.get(parse_int(args, "number"))
        if order is None:
            raise RpcError(404, f"order {args['number']} not found")
        return {"number": order.number, "name": order.name, "type": order.type, "quantity": order.quantity}

    def _lead(self):
        """Answer as the leader: caught up on the order stream, and reconciling what a predecessor left."""
        if not self.orders.leading:
            self.orders.lead()
            self.uncertain.set()

    def reconcile(self):
        """Log every trade the catalog applied that the order log does not have yet."""
        missed = self.catalog.call("catalog", "trades_after", {"seq": self.orders.seq_floor},
                                   timeout=self.catalog_timeout)
        for t in missed:
            if not self.orders.has_seq(t["seq"]):
                # Only while leading: a replica that lost the lead (frozen, cut off) must not take it back.
                order = self.orders.record(t["trade_id"], t["name"], t["type"], t["quantity"], t["seq"],
                                           take_lead=False)
                if order is None:
                    return
                log.warning("reconciled trade %s as transaction %d", t["trade_id"], order.number)



class Reconciler(Loop):
    """Reconciles ``service`` at start, after every catalog call whose outcome is unknown, and every
    RECONCILE_EVERY seconds for a catalog commit that came later than its deadline."""

    def __init__(self, service):
        super().__init__("reconcile", daemon=True)
        self.service = service

    def wake(self):
        self.service.uncertain.set()

    def run(self):
        service = self.service
        service.uncertain.set()
        while not self.stopping.is_set():
            service.uncertain.wait(timeout=RECONCILE_EVERY)
            # Cleared before the wait, so a call that fails during it asks for another round.
            service.uncertain.clear()
            # A request the catalog has not started by its deadline is dropped: wait out those in hand.
            if self.stopping.wait(service.catalog_timeout):
                return
            if not service.orders.leading:
                continue  # the leader reconciles; this replica may become it
            try:
                service.reconcile()
            except RpcError as exc:
                log.warning("reconciliation failed, will retry: %s", exc.message)
                service.uncertain.set()

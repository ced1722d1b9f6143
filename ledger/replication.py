"""The one log of trades: a RabbitMQ stream that decides every trade and its transaction number.

Every replica (of the order service and of the catalog) reads the stream ``<namespace>.orders`` in
order and applies one deterministic rule to each order in it (``_accept``), so every replica's
order log and stock table are the same function of the same prefix. The leader (whichever order
replica RabbitMQ made the order queue's active consumer) proposes an order by publishing it with
the number it expects, and answers only once its own reader has applied it: an order that lost a
race (a zombie ex-leader's, one out of turn, one that would oversell) is refused by every replica
alike, the leader included, so nothing reaches a CSV or a stock that is not in the stream there.
Orders proposed while the reader is busy go out together as one entry (``_flush``).
"""
import contextlib
import functools
import itertools
import json
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import pika

from broker import tracing
from broker.connection import call_soon
from broker.consumer import Consumer
from broker.messages import RpcError, deadline_left, unique_id
from broker.server import StepDown
from ledger import stream
from ledger.disk import DiskHealth, StorageFault
from ledger.orders import Corrupt, Order
from ledger.position import Position, PositionFile
from ledger.stocks import Stocks, change
from ledger.stream import ORDERS, READ_AHEAD, STREAM, SYNC, Diverged
from runtime.lifecycle import Loop
from runtime.metrics import ORDER_LEADING, ORDER_LOG_ORDERS, ORDER_STREAM_POSITION
from storage.files import DiskFull

log = logging.getLogger(__name__)
# A follower is on nobody's critical path: it reads and fsyncs in rounds this long (at most),
# leaving the CPUs, the broker and the disk to the leader between them.
FOLLOWER_ROUND = 0.2
NO_STREAM = "no connection to the order stream"
PROBE_EVERY = 1.0  # seconds between checks whether a disk with a fault takes writes again


class ReplicatedLog(Consumer):
    """An OrderLog and a stock table (``stocks``) kept equal to the stream: it reads the stream in a
    thread of its own (from ``start`` to ``stop``), ``lead`` and ``propose`` write it; a Diverged
    log is its failure. ``name`` (``order-0``, ``catalog-1``) names its connection and entries.

    Reads (``get``, ``find``, ``stocks``) answer from the local state. A replica becomes the
    writer with ``lead``: it publishes a sync marker and waits until its reader reaches it, so
    it has read everything any earlier leader wrote before it numbers anything itself. A leader
    whose disk fails (``disk``) stops leading and calls ``on_step_down()``, so that the order
    queue goes to another replica. Catalog replicas only read (``wait_applied``).
    """

    retry_pause = 0.2

    def __init__(self, settings, orders, name):
        super().__init__(settings, f"{name}.stream")
        self.orders, self.replica = orders, name
        self.stream = settings.queue(STREAM)
        self._position_file = PositionFile(settings.data_dir / "stream_position")
        self._position, self._next, self._last_id = 0, 0, None  # the stream's start, until read from the file
        self._resume_from_saved_position()
        self.disk = DiskHealth(settings.data_dir, settings.fsync_limit)
        self.on_step_down: Any = None  # called when this replica, leading, stops because of its disk
        # Stocks -> the Publications announcing them: published for the stocks a commit changed.
        self.announce: Any = None
        self._lock = threading.RLock()  # guards the fields below, shared by handlers and the reader
        self._link: tuple[Any, Any] | None = None  # (connection, channel) of the reader, which also publishes
        self._connected = threading.Event()
        self._wake = threading.Event()  # cuts a follower's pause short: this replica publishes, or waits
        self._first_delivery, self._last_tag = False, None  # of the reader's subscription, unacked
        self._round_entries = 0  # deliveries in the reader's current round
        self._full_round = False  # whether the last round used all the reader's credit
        self._waiters = {}  # message id -> Future of the entry's outcome
        self._applied = []  # (Future, outcome) of entries applied since the last sync, for the reader only
        self._unsynced = False  # entries applied since the last sync
        self._pending = {}  # trade id -> Future of the proposal in flight for it
        self._outbox = []  # (order, Future, trace headers) proposed since the last _flush
        # The stock changes of the orders in flight, by stock and by trade id, so proposals fit the stock.
        self._reserved, self._in_flight = {}, {}
        self._progress = threading.Condition()  # notified when entries are applied and synced
        self._synced = threading.Event()  # read the stream to its end once (wait_applied)
        self._waiting_readers = 0  # threads in wait_applied
        self._leading = False
        self._proposed = 0  # the number the next proposal gets
        self._lead_lock = threading.Lock()
        self._caught_up = False  # since the reader last subscribed, for the log
        # Read when scraped, so they are never out of date.
        ORDER_STREAM_POSITION.set_function(lambda: self.position)
        ORDER_LOG_ORDERS.set_function(lambda: self.next_number)

    def get(self, number):
        return self.orders.get(number)

    def find(self, trade_id):
        """The order of a trade id in the window of a proposal made now."""
        return self.orders.find(trade_id, _now_ms())

    def wait_applied(self, seq, timeout):
        """Wait until this replica has applied the trades up to ``seq`` (a stock's: transaction number
        + 1), and once in its life read the stream to its end (as ``lead`` does, with a sync marker),
        so that a new replica answers nothing from before its catch-up; return whether it did within
        ``timeout`` s. A follower does not pause between rounds while anyone waits here."""
        with self._progress:
            self._waiting_readers += 1
        try:
            if not self._synced.is_set():
                with self._lead_lock:
                    if not self._synced.is_set():
                        self._wait(self._publish(SYNC, b"{}"), "reading the order stream to its end")
                        self._synced.set()
            with self._progress:
                self._wake.set()  # a follower between rounds reads on at once
                return self._progress.wait_for(lambda: self._next >= seq, timeout)
        finally:
            with self._progress:
                self._waiting_readers -= 1

    def require_space(self):
        """Step down (StepDown) if the disk is too full to log a trade."""
        try:
            self.orders.require_space()
        except DiskFull:
            # A replica handling a trade is the active consumer (made so by ``lead``, which refuses
            # while the disk has a fault): it steps down, and this request goes to the next in line.
            fault = self.disk.report("full", "the disk has less room than a trade needs")
            self._stand_down(fault)
            raise StepDown(str(fault)) from None

    @property
    def leading(self):
        return self._leading

    @property
    def connected(self):
        """Whether the stream reader is connected, so that leading waits for no connection."""
        return self._connected.is_set()

    @property
    def position(self):
        """The offset of the next stream entry this replica applies."""
        return self._position

    @property
    def next_number(self):
        """The transaction number of the next order the stream gives this replica."""
        return self._next

    def resign(self):
        """Stop numbering until the next ``lead``, which reads the stream to its end first."""
        with self._lock:
            self._leading = False
            ORDER_LEADING.set(0)

    def lead(self):
        """Make this replica the writer, if it is not already: catch up to the end of the stream."""
        with self._lead_lock:
            if self._leading:
                return
            if self.disk.fault and not self.disk.probe():
                raise self.disk.fault.error()  # made active anyway: no standby can serve either
            next_number = self._wait(self._publish(SYNC, b"{}"), "reading the order stream to its end")
            with self._lock:
                self._proposed, self._leading = next_number, True
                ORDER_LEADING.set(1)
            log.info("leading: the next transaction number is %d", next_number)

    def propose(self, trade_id, name, order_type, quantity):
        """Execute a trade through the stream once per trade id: the Order numbering it (the earlier
        one of a retried id), or RpcError 404 (no such stock) or 409 (not enough of it)."""
        for _ in range(2):  # a second try after another writer took our number and we caught up
            self.lead()
            if (proposal := self.submit(trade_id, name, order_type, quantity)) is None:
                continue  # resigned since: lead again
            outcome = self._wait(proposal, f"replicating trade {trade_id}")
            if isinstance(outcome, RpcError):
                raise outcome
            if outcome is not None:
                return outcome
            log.warning("another writer took the number meant for trade %s: catching up", trade_id)
            self.resign()
        raise RpcError(503, "the order log changed leader during the trade; retry it")

    def submit(self, trade_id, name, order_type, quantity):
        """Propose a trade without waiting, if this replica leads (else None: ``lead`` first): the
        Future of its outcome, the Order numbering it (the earlier one of a retried id), a 409 RpcError,
        or None if another writer took its number. RpcError 404 or 409 if it is refused at once.
        In a trace, its span lasts until the outcome, and the stream entry carries it."""
        return tracing.span_until_done(f"{self.stream} publish", tracing.SpanKind.PRODUCER, self.stream,
                                       functools.partial(self._submit, trade_id, name, order_type, quantity))

    def _submit(self, trade_id, name, order_type, quantity):
        with self._lock:
            if not self._leading:
                return None
            if (order := self.find(trade_id)) is not None:
                found: Future = Future()
                found.set_result(order)
                return found
            if (proposal := self._pending.get(trade_id)) is None:  # else: one retry of it is in flight
                proposal = self._pending[trade_id] = self._enqueue(trade_id, name, order_type, quantity)
                proposal.add_done_callback(lambda done: self._forget(trade_id, done))
            return proposal

    def _forget(self, trade_id, proposal):
        with self._lock:
            if self._pending.get(trade_id) is proposal:
                del self._pending[trade_id]

    def _enqueue(self, trade_id, name, order_type, quantity):
        """Queue an order with the next number for the stream (holding the lock); the Future of its
        outcome. It is checked against the stocks as the orders in flight leave them, so the stream
        accepts it unless another writer's orders come between."""
        if self.failure:
            raise RpcError(503, "this order replica cannot follow the order stream")  # why: in its log
        reserved = self._reserved.get(name, 0)
        if not self.stocks.available(name, order_type, quantity, reserved):
            if (stock := self.stocks.get(name)) is None:
                raise RpcError(404, f"stock {name!r} not found")
            raise RpcError(409, f"insufficient quantity of {name}: {stock.quantity + reserved} available")
        if self._link is None:
            raise RpcError(503, NO_STREAM)
        # The first order since the last flush asks for one; the rest join it.
        if not self._outbox and not call_soon(self._link[0], self._flush):
            raise RpcError(503, NO_STREAM)
        order = Order(self._proposed, name, order_type, quantity, trade_id, self._proposed + 1, _now_ms())
        outcome: Future = Future()
        self._outbox.append((order, outcome, tracing.inject({})))
        self._proposed += 1
        self._reserved[name] = reserved + change(order_type, quantity)
        self._in_flight[trade_id] = name, change(order_type, quantity)
        self._wake.set()
        return outcome

    def _flush(self):
        """Publish every order queued since the last flush as one stream entry, on the reader's thread.

        Orders queue up only while this thread is busy (applying, syncing, publishing the previous
        entry), so one trade in flight goes out alone at once and many go out together: batching
        that adapts to the load, with no timer. At most ORDER_BATCH orders go in one entry."""
        with self._lock:
            batch, self._outbox = self._outbox[:self.settings.order_batch], self._outbox[self.settings.order_batch:]
            if not batch or self._link is None:
                return  # _disconnect failed them
            connection, channel = self._link
            if self._outbox:  # more than a batch: the rest go next, in order
                connection.add_callback_threadsafe(self._flush)
            message_id = unique_id()
            self._waiters[message_id] = [outcome for _, outcome, _ in batch]
        props = pika.BasicProperties(type=ORDERS, message_id=message_id, content_type="application/json",
                                     app_id=self.replica, delivery_mode=2, headers=_trace_headers(batch))
        channel.basic_publish("", self.stream, json.dumps([order._asdict() for order, _, _ in batch]).encode(),
                              props)

    def subscribe(self, connection):
        channel = stream.declare(connection, self.stream, self.settings.order_stream_max_age, self._position,
                                 self.stopping)
        if self._position:
            stream.check_length(connection, self.stream, self._position, self.replica, self.settings.rpc_timeout)
        channel.add_on_cancel_callback(self._on_cancelled)
        channel.basic_qos(prefetch_count=READ_AHEAD)
        self._first_delivery, self._last_tag = True, None
        channel.basic_consume(self.stream, self._on_entry, arguments={"x-stream-offset": self._resume_offset()})
        with self._lock:
            self._link = connection, channel
            self._connected.set()
        log.info("reading the order stream %s from offset %d (%d orders in the log)",
                 self.stream, self._resume_offset(), self.orders.next_number)
        self._caught_up = False

    def pump(self, connection):
        """One round: apply every entry that arrived, fsync them at once, then ack the round."""
        self._wake.clear()
        self._round_entries = 0
        try:
            connection.process_data_events(time_limit=None)  # returns by the consumer's next tick
            if not self._hurried():
                self._take_what_arrived(connection)
            if not self._caught_up and self._last_tag is None:  # a round that brought nothing
                self._caught_up = True
                log.info("caught up with the order stream at offset %d: %d orders; following it",
                         self._position, self._next)
            self._commit()
        except StorageFault as fault:
            self._recover(fault)
            raise  # reconnects, reading on from the saved position
        if self._last_tag is not None:  # one ack for the round: a stream's acks are only credit
            assert self._link is not None  # set by subscribe, on this thread
            _, channel = self._link
            channel.basic_ack(self._last_tag, multiple=True)
            self._last_tag = None
        # A follower pauses after a round that brought entries, unless it is behind: its round used
        # all its credit, or the one before did (the next entries may still be on their way). A
        # round that brought nothing (a tick) waits in the next poll.
        full = self._round_entries >= READ_AHEAD
        behind, self._full_round = full or self._full_round, full
        if self._round_entries and not (behind or self._hurried()):
            self._wake.wait(FOLLOWER_ROUND)

    def _hurried(self):
        """Whether someone waits for this reader: its own entries in flight, or readers of its state."""
        return bool(self._leading or self._waiters or self._waiting_readers)

    def _take_what_arrived(self, connection):
        """Read on while entries are waiting, up to the credit: one poll reads at most 100 KB (pika's
        limit), ~250 one-order entries, and a round of one poll never used a credit of 500."""
        while True:
            before = self._round_entries
            connection.process_data_events(time_limit=0)
            if self._round_entries == before or self._round_entries >= READ_AHEAD:
                return

    def fail(self, reason):
        log.critical("%s: this replica stops applying the stream", reason)
        super().fail(reason)

    def disconnected(self):
        self._disconnect(StepDown(str(self.disk.fault)) if self.disk.fault else
                         RpcError(503, "lost the connection to the order stream"))

    def check_disk(self):
        """Step down while leading if a write of the log has stalled (the reader is stuck in it)."""
        if self._leading and (fault := self.disk.stalled()):
            self._stand_down(fault)

    def _stand_down(self, fault):
        """Stop leading because of a storage fault: every writer waiting hears StepDown, and a leader
        gives up the order queue so that a standby takes its requests; return whether it led."""
        with self._lock:
            was_leading, self._leading = self._leading, False
            ORDER_LEADING.set(0)
            waiting = [*itertools.chain(*self._waiters.values()), *(waiter for waiter, _ in self._applied)]
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(StepDown(str(fault)))
        if was_leading and self.on_step_down:
            self.on_step_down()
        return was_leading

    def _recover(self, fault):
        """After a failed write: stand down, forget what is not durable, and read on from the last
        saved position once the disk takes writes again (probed every PROBE_EVERY seconds)."""
        self._stand_down(fault)
        # The link goes before the probe can end the episode: a writer that leads meanwhile waits
        # for the next subscription instead of publishing on a connection about to be dropped.
        self._disconnect(StepDown(str(fault)))
        self._applied, self._unsynced = [], False
        self.orders.reload()
        self._resume_from_saved_position()
        while not self.disk.probe():
            if self.stopping.wait(PROBE_EVERY):
                return

    def _on_cancelled(self, _frame):
        raise ConnectionError("RabbitMQ cancelled the order stream's consumer (stream deleted?)")

    def _publish(self, kind, body):
        """Append an entry to the stream (from the reader's thread); return the Future of its outcome."""
        if self.failure:
            raise RpcError(503, "this order replica cannot follow the order stream")  # why: in its log
        outcome: Future = Future()
        message_id = unique_id()
        self._connected.wait(deadline_left(self.settings.rpc_timeout))
        with self._lock:
            if self._link is None:
                raise RpcError(503, NO_STREAM)
            connection, channel = self._link
            props = pika.BasicProperties(type=kind, message_id=message_id, content_type="application/json",
                                         app_id=self.replica, delivery_mode=2,
                                         headers=tracing.inject({}) or None)
            # Callbacks run in order: the stream gets a marker after the proposals queued before it.
            if not call_soon(connection, lambda: channel.basic_publish("", self.stream, body, props)):
                raise RpcError(503, NO_STREAM)
            self._waiters[message_id] = [outcome]
        self._wake.set()
        return outcome

    def _wait(self, outcome, doing):
        """The outcome of an entry, within the request's deadline."""
        try:
            return outcome.result(timeout=deadline_left(self.settings.rpc_timeout))
        except TimeoutError:
            self.resign()  # the entry may still land: read the stream to its end before numbering again
            raise RpcError(504, f"timed out {doing}") from None

    def _on_entry(self, channel, delivery, props, body):
        offset = int(props.headers["x-stream-offset"])
        if self._first_delivery:  # of this subscription, which asked for _resume_offset
            self._first_delivery = False
            if offset > self._resume_offset():
                raise Diverged(f"the order stream now starts at offset {offset}, after this replica's position "
                               f"{self._position}: its retention dropped entries this replica never read; give "
                               f"it a copy of another replica's data directory")
        if offset == self._position - 1 and self._last_id not in (None, props.message_id or ""):
            raise Diverged(f"the order stream holds another entry at offset {offset} ({props.message_id}) than "
                           f"the one this replica applied there ({self._last_id}): the stream was replaced")
        if offset >= self._position:  # a chunk may start before the offset asked for
            with contextlib.ExitStack() as spans:  # a receive span in the trace of each traced order it holds
                for carrier in _trace_contexts(props.headers):
                    spans.enter_context(tracing.span(
                        f"{self.stream} receive", tracing.SpanKind.CONSUMER, self.stream, carrier,
                        {"bazaar.stream.offset": offset, "bazaar.stream.entry": props.type}))
                outcomes = self._apply(props.type, body)
            self._position, self._last_id, self._unsynced = offset + 1, props.message_id or "", True
            with self._lock:
                waiters = self._waiters.pop(props.message_id, [])
            self._applied += zip(waiters, outcomes, strict=False)
        self._last_tag, self._round_entries = delivery.delivery_tag, self._round_entries + 1

    def _resume_offset(self):
        """Where to start reading: the last entry applied, which the stream must still hold (offsets
        skip the entries RabbitMQ keeps for itself, so the position may never be delivered), or
        the stream's first entry, a leader's sync marker."""
        return max(self._position - 1, 0)

    def _commit(self):
        """Group commit: one fsync for the entries applied in a round; then the stocks this replica's
        orders changed are announced, once each however many orders changed them, and the orders'
        writers hear of them (so an event is on its way before anyone hears of its trade)."""
        if not self._unsynced:
            return
        with self.disk.writing("an fsync of the order log"):
            self.orders.sync()
            self._position_file.save(Position(self._position, self._next, self._last_id, self.stocks))
        changed = {outcome.name for _, outcome in self._applied if isinstance(outcome, Order)}
        if changed and self.announce and self._link:
            _, channel = self._link
            for publication in self.announce([self.stocks.get(name) for name in sorted(changed)]):
                channel.basic_publish(*publication)
        for waiter, outcome in self._applied:
            if not waiter.done():  # a writer already told to step down is not told otherwise
                waiter.set_result(outcome)
        self._applied, self._unsynced = [], False
        with self._progress:
            self._progress.notify_all()

    def _apply(self, kind, body):
        """Apply one entry; return the outcome of each order in it (of a sync marker: the next number)."""
        if kind == SYNC:
            return [self._next]
        try:
            fields = json.loads(body)
            orders = [Order.load(entry) for entry in (fields if kind == ORDERS else [fields])]
        except (ValueError, TypeError) as exc:
            log.warning("skipping a malformed order stream entry %r: %s", body[:200], exc)
            return []
        return [self._accept(order) for order in orders]

    def _accept(self, order):
        """Decide an order; return its trade's Order (this one if accepted), a 409 RpcError, or None.

        An order is accepted iff it has the next number, its trade has no number in the window at the
        order's own time, and its stock has enough left (``Stocks.available``). The window and the
        stocks hold exactly the orders accepted before it (``rewind``, the saved table), so the
        decision depends on the stream alone: no clock, restart or arrival time enters it."""
        accepted = (order.number == self._next and self.orders.find(order.trade_id, order.time_ms) is None
                    and self.stocks.available(order.name, order.type, order.quantity))
        if accepted:
            self._log(order)
        refused_stock = self.stocks.get(order.name) if order.number == self._next and not accepted else None
        with self._lock:  # the stocks and the reservations change together, for proposals made meanwhile
            if accepted:
                self.stocks.apply(order)
            if (reservation := self._in_flight.pop(order.trade_id, None)) is not None:
                name, delta = reservation
                self._reserved[name] -= delta
        if accepted:
            self._next += 1
            return order
        if (earlier := self.orders.find(order.trade_id, order.time_ms)) is not None or refused_stock is None:
            return earlier
        return RpcError(409, f"insufficient quantity of {order.name}: {refused_stock.quantity} available")

    def _log(self, order):
        """Write an accepted order to the log, or check it against the log a replica already has."""
        if order.number < self.orders.next_number:  # catching up over a log we already have
            try:
                logged = self.orders.get(order.number)
            except Corrupt as exc:
                raise Diverged(str(exc)) from None
            if logged != order:
                raise Diverged(f"order {order.number} is {logged} in the log but {order} in the stream")
            self.orders.remember(order)
        else:
            with self.disk.writing("an append to the order log"):
                self.orders.append(order, sync=False)

    def _resume_from_saved_position(self):
        """Take the saved position: the entry after the last one applied, the next number there, and
        that last entry's message id; the window is rewound to it, to decide what follows again."""
        self._position, self._next, self._last_id, self.stocks = self._load_position()
        if self._next < self.orders.next_number:
            self.orders.rewind(self._next)

    def _load_position(self):
        """Where to resume reading (a Position): saved, or the stream's start."""
        saved = self._position_file.read()
        # A log older than the saved position (restored, emptied, cut) is caught up from the start.
        if saved is None or saved.next_number > self.orders.next_number:
            return Position(0, 0, None, Stocks())
        return saved

    def _disconnect(self, error):
        with self._lock:
            self._link, self._leading = None, False
            ORDER_LEADING.set(0)
            self._connected.clear()
            waiters = [*itertools.chain(*self._waiters.values()), *(waiter for _, waiter, _ in self._outbox)]
            self._waiters, self._outbox, self._reserved, self._in_flight = {}, [], {}, {}
        for waiter in waiters:
            if not waiter.done():  # one told to step down already
                waiter.set_exception(error)


class DiskWatch(Loop):
    """Looks every 0.2 s whether a replica's log write has stalled (``ReplicatedLog.check_disk``)."""

    def __init__(self, replicated):
        super().__init__("disk-watch", daemon=True)
        self.replicated = replicated

    def run(self):
        while not self.stopping.wait(0.2):
            self.replicated.check_disk()


def _now_ms():
    """The time a proposal carries: its replicas' idempotency window is measured from it."""
    return int(time.time() * 1000)


def _trace_headers(batch):
    """The headers of an entry of ``batch``'s orders: the trace context of its first traced order, and
    if several are traced, every one's ``traceparent`` in ``traceparents`` (comma-separated: a stream
    keeps only headers of simple values), so that each trace gets its receive spans."""
    carriers = [carrier for _, _, carrier in batch if carrier]
    if len(carriers) < 2:
        return carriers[0] if carriers else None
    return {**carriers[0], "traceparents": ",".join(carrier["traceparent"] for carrier in carriers)}


def _trace_contexts(headers):
    """The trace context of each traced order of an entry with ``headers`` (``_trace_headers``)."""
    if "traceparents" not in headers:
        return [headers]
    return [{"traceparent": traceparent} for traceparent in str(headers["traceparents"]).split(",")]

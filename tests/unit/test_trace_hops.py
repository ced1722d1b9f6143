"""The hop-by-hop split of traced trades (bench.traces --hops)."""
from bench.traces import TRADE_HOPS, Span, trade_hops


def trade(trace_id, leader, edges, batch=None):
    """The five spans of one traced trade, from ``edges``: ``{role: (start ms, end ms)}``; with ``batch``
    (sent ms, replied ms) its call rode a batch."""
    names = {"http": ("POST /orders", "server", "frontend"), "client": ("order/trade", "client", "frontend"),
             "server": ("order/trade", "server", leader), "publish": ("x.orders publish", "producer", leader),
             "receive": ("x.orders receive", "consumer", leader)}
    batched = {} if batch is None else {"bazaar.batched": "true", "bazaar.batch.sent_ns": str(int(batch[0] * 1e6)),
                                        "bazaar.batch.replied_ns": str(int(batch[1] * 1e6))}
    return [Span(trace_id, role, "", name, kind, service, int(start * 1e6), int(end * 1e6),
                 batched if role == "client" else {})
            for role, (name, kind, service) in names.items() for start, end in [edges[role]]]


def test_each_hop_is_the_median_gap_between_span_edges_and_they_add_up_to_the_request():
    first = trade("a", "order-0", {"http": (0, 10), "client": (1, 9), "server": (2, 6), "publish": (2.5, 5.5),
                                   "receive": (3, 4)})
    second = trade("b", "order-2", {"http": (0, 20), "client": (1, 19), "server": (4, 8), "publish": (4.5, 7.5),
                                    "receive": (5, 7)})
    # A follower's receive in the same trace is not taken for the leader's.
    follower = Span("b", "f", "", "x.orders receive", "consumer", "order-1", 0, 1, {})
    hops = dict((what, ms) for what, ms, _ in trade_hops([follower, *first, *second]))
    assert list(hops) == [what for what, *_ in TRADE_HOPS]
    assert hops["request to the leader"] == 2  # 1 and 3 ms
    assert hops["stream, to the leader's reader"] == 0.5
    assert hops["reply to the frontend"] == 7  # 3 and 11 ms
    # Calls sent alone: no wait for a batch in flight, nor for a batch thread's hand-over.
    assert hops["frontend, waiting for the batch in flight"] == 0
    assert hops["frontend, from its batch thread to the handler"] == 0
    assert trade_hops(first)[0][2] == 1
    assert sum(ms for _, ms, _ in trade_hops(first)) == 10  # the whole HTTP request


def test_a_batched_call_splits_its_wait_for_the_batch_and_for_the_handler_from_the_broker_hops():
    spans = trade("a", "order-0", {"http": (0, 20), "client": (1, 19), "server": (5, 10), "publish": (5.5, 9),
                                   "receive": (6, 8)}, batch=(4, 14))
    hops = {what: ms for what, ms, _ in trade_hops(spans)}
    assert hops["frontend, waiting for the batch in flight"] == 3
    assert hops["request to the leader"] == 1
    assert hops["reply to the frontend"] == 4
    assert hops["frontend, from its batch thread to the handler"] == 5
    assert sum(hops.values()) == 20


def test_a_trace_missing_a_span_is_left_out():
    spans = trade("a", "order-0", {"http": (0, 10), "client": (1, 9), "server": (2, 6), "publish": (2.5, 5.5),
                                   "receive": (3, 4)})
    assert trade_hops(spans[:-1]) == []

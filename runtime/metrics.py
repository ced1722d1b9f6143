"""Prometheus metrics of every service, defined once; each is updated in one place.

Names follow the Prometheus conventions: a ``bazaar_`` prefix, base units (seconds), and
``_total`` on counters. Workers serve them on METRICS_PORT; the frontend on ``/metrics``.
"""
import logging
from collections.abc import Callable
from typing import Any

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from runtime.lifecycle import Component
from runtime.settings import Settings

log = logging.getLogger(__name__)

# Requests take from a fraction of a millisecond (lookups) to the RPC timeout (seconds).
LATENCY_BUCKETS = (.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)

# The frontend's HTTP requests (frontend/__init__.py); ``route`` is the URL rule, not the path.
HTTP_REQUESTS = Counter("bazaar_http_requests_total", "HTTP requests answered, by route, method and status.",
                        ["route", "method", "status"])
HTTP_DURATION = Histogram("bazaar_http_request_duration_seconds", "Time to answer an HTTP request.",
                          ["route", "method"], buckets=LATENCY_BUCKETS)
# Read when scraped (frontend/server.py): the requests waitress has read that wait for a free thread.
HTTP_QUEUED = Gauge("bazaar_http_requests_queued",
                    "HTTP requests read and waiting for one of the FRONTEND_THREADS handler threads.")

# The frontend's cache of stock lookups (frontend/cache.py).
CACHE_HITS = Counter("bazaar_cache_hits_total", "Stock lookups answered from the frontend's cache.")
CACHE_MISSES = Counter("bazaar_cache_misses_total", "Stock lookups the frontend's cache could not answer.")

# Calls made by an RpcClient (broker/client.py): the frontend's and the order worker's.
RPC_CALL_DURATION = Histogram("bazaar_rpc_call_duration_seconds",
                              "Time from publishing an RPC request to its reply or failure.",
                              ["service", "method"], buckets=LATENCY_BUCKETS)
RPC_CALLS_IN_FLIGHT = Gauge("bazaar_rpc_calls_in_flight", "RPC calls waiting for their reply.", ["service"])

# Requests handled by an RpcServer (broker/server.py): the workers'.
RPC_HANDLED = Counter("bazaar_rpc_messages_handled_total", "RPC requests answered, by method and status.",
                      ["service", "method", "status"])
RPC_HANDLING_DURATION = Histogram("bazaar_rpc_handling_duration_seconds",
                                  "Time a worker spends handling an RPC request.",
                                  ["service", "method"], buckets=LATENCY_BUCKETS)
RPC_DEAD_LETTERED = Counter("bazaar_rpc_dead_lettered_total",
                            "Requests a worker dead-lettered: malformed, or their caller stopped waiting.",
                            ["service", "reason"])

# The fsync that makes an appended record durable (broker/storage.py).
FSYNC_DURATION = Histogram("bazaar_storage_fsync_duration_seconds", "Time to fsync an appended log record.",
                           buckets=LATENCY_BUCKETS)

# An order replica's writes of its log that failed or stalled (order_worker/disk.py), by kind:
# full, io, read-only, slow. A replica with a fault does not lead until its disk takes writes again.
STORAGE_FAULTS = Counter("bazaar_storage_faults_total",
                         "Writes of the order log that failed or took longer than FSYNC_LIMIT, by kind.", ["kind"])
ORDER_LOG_WRITABLE = Gauge("bazaar_order_log_writable",
                           "1 while this order replica can write its log, 0 during a storage fault.")


# What the stack launcher (harness/stack.py) and operators read to know a worker is ready and who leads.
CONSUMERS = Gauge("bazaar_consumers", "Connections of this process consuming from the broker, by consumer name.",
                  ["name"])
ORDER_LEADING = Gauge("bazaar_order_leading", "1 while this order replica numbers trades (it leads), else 0.")
# How far an order replica has read (order_worker/replication.py), for its lag behind the others.
ORDER_STREAM_POSITION = Gauge("bazaar_order_stream_position",
                              "Offset of the next order stream entry this replica applies.")
ORDER_LOG_ORDERS = Gauge("bazaar_order_log_orders",
                         "Orders in this replica's log: the next transaction number it expects.")


class MetricsServer(Component):
    """Serves the metrics over HTTP on METRICS_PORT; 0 (the default) serves none.

    A port another process holds is a configuration error: the service stops with it, since
    several services on one machine need distinct ports.
    """

    name = "metrics"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self._server: Any = None

    def start(self, on_failure: Callable[[Component], None] | None = None) -> None:
        super().start(on_failure)
        if not self.settings.metrics_port:
            return
        try:
            self._server, _ = prometheus_client.start_http_server(self.settings.metrics_port,
                                                                  self.settings.metrics_host)
        except OSError as exc:
            raise SystemExit(f"cannot serve metrics on {self.settings.metrics_host}:{self.settings.metrics_port} "
                             f"(METRICS_PORT): {exc.strerror}") from None
        log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, self.settings.metrics_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

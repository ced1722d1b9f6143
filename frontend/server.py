"""Serve the app with waitress, sized so that idle or stalled connections cannot lock others out."""
import logging
import resource
from typing import Any

import waitress

from frontend.eventloop import ChannelMap, EventLoop
from runtime.lifecycle import Loop
from runtime.metrics import HTTP_QUEUED

log = logging.getLogger(__name__)
SPARE_FILES = 100  # for the broker connections, logs and imports


def raise_open_file_limit():
    """Raise this process's soft limit on open files to its hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):  # e.g. an unlimited hard limit the kernel caps lower
        return soft


def create_server(app, settings):
    """A waitress server that holds up to ``settings.frontend_connection_limit`` connections.

    waitress reads requests in one event loop and hands only complete ones to its threads, so a
    connection that sends half a request (slowloris) or trickles its body costs a file
    descriptor, not a thread. What runs out is the connection limit, so it is high, and silent
    connections are closed after ``frontend_channel_timeout`` seconds. ``serve`` runs the loop
    with epoll (frontend/eventloop.py), so connections waiting for their clients cost a pass
    nothing.
    """
    limit = min(settings.frontend_connection_limit, raise_open_file_limit() - SPARE_FILES)
    if limit < settings.frontend_connection_limit:
        log.warning("the open-file limit allows only %d connections, not %d",
                    limit, settings.frontend_connection_limit)
    return waitress.create_server(
        app, map=ChannelMap(), host=settings.frontend_host, port=settings.frontend_port,
        threads=settings.frontend_threads, ident="stock-bazaar",
        connection_limit=limit, backlog=2048,
        channel_timeout=settings.frontend_channel_timeout, cleanup_interval=5,
        # No lookahead (waitress's default): with channel_request_lookahead=1, one keep-alive request
        # in ten waited 20-150 ms on this loop (the HTTP floor's app on it: p90 38 ms, 328/s at one
        # connection; without: p90 0.38 ms, 2,870/s, as waitress's own loop).
        channel_request_lookahead=0)


class HttpServer(Loop):
    """Serves ``app`` with waitress, its event loop in a thread of its own (frontend/eventloop.py).

    ``stop`` ends the loop, then lets the requests being handled finish: at most one RPC timeout
    and a second, since a request in hand waits at most one RPC timeout for its reply.
    """

    def __init__(self, app, settings):
        super().__init__("http")
        self.app, self.settings = app, settings
        self._server: Any = None

    def start(self, on_failure=None):
        self._server = create_server(self.app, self.settings)
        queue = self._server.task_dispatcher.queue
        HTTP_QUEUED.set_function(lambda: len(queue))
        log.info("serving on http://%s:%s", self._server.effective_host, self._server.effective_port)
        super().start(on_failure)

    def run(self):
        # waitress's own run() loops until SystemExit; this loop looks for the stop after every pass.
        loop = EventLoop(self._server)
        while not self.stopping.is_set():
            loop.poll(self._server.adj.asyncore_loop_timeout)
        loop.close()

    def stop(self):
        super().stop()
        if self._server is not None:
            self._server.task_dispatcher.shutdown(timeout=self.settings.rpc_timeout + 1)
            self._server.close()
            self._server = None

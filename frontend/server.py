"""Serve the app with waitress, sized so that idle or stalled connections cannot lock others out."""
import logging
import resource

import waitress
from waitress import wasyncore

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
    descriptor, not a thread. What runs out is the connection limit, so it is high, poll()
    replaces select() (which cannot watch descriptors past 1024), and silent connections are
    closed after ``frontend_channel_timeout`` seconds. Each pass of waitress's loop still costs
    time in proportion to the open connections (about 1 µs each), which a proxy in front avoids.
    """
    limit = min(settings.frontend_connection_limit, raise_open_file_limit() - SPARE_FILES)
    if limit < settings.frontend_connection_limit:
        log.warning("the open-file limit allows only %d connections, not %d",
                    limit, settings.frontend_connection_limit)
    return waitress.create_server(
        app, host=settings.frontend_host, port=settings.frontend_port,
        threads=settings.frontend_threads, ident="stock-bazaar",
        connection_limit=limit, backlog=2048, asyncore_use_poll=True,
        channel_timeout=settings.frontend_channel_timeout, cleanup_interval=5,
        # A keep-alive connection stays readable while its request runs, so the client's next
        # request is seen by the poll() already under way rather than after the next pass.
        channel_request_lookahead=1)


def serve(server, stop_signal, grace):
    """Serve until ``stop_signal`` arrives, then let requests being handled finish (``grace`` s at most)."""
    log.info("serving on http://%s:%s", server.effective_host, server.effective_port)
    # waitress's own run() loops until SystemExit; this loop looks for the stop after every pass.
    while not stop_signal.wait(0):
        wasyncore.loop(timeout=server.adj.asyncore_loop_timeout, map=server._map,
                       use_poll=server.adj.asyncore_use_poll, count=1)
    server.task_dispatcher.shutdown(timeout=grace)
    server.close()

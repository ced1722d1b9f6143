"""The frontend: HTTP in, one RPC per request over RabbitMQ, the worker's reply out."""
import functools
import json
import logging
import time

from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from broker.messages import unique_id
from frontend import health, page, routes, tracing
from frontend.board import StockBoard
from frontend.cache import EventViews, LookupCache
from frontend.system import SystemView
from runtime.logs import request_id
from runtime.metrics import HTTP_DURATION, HTTP_REQUESTS

log = logging.getLogger(__name__)
REQUEST_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def create_app(settings, rpc, events):
    """Build the Flask app on an RPC client (``call``) and an event source (``listeners``), which
    the caller starts and stops: an RpcClient and a Subscriber, or test doubles.

    The event source keeps the stock board, the lookup cache (unless CACHE_SIZE is 0) and the
    view of the order replicas fresh."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # An OPTIONS answer would be an empty text/html 200; every response here is JSON.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the default provider has it
    app.extensions["rpc"] = rpc
    app.extensions["cache"] = cache = LookupCache(settings.cache_size)
    app.extensions["board"] = board = StockBoard()
    events.listeners.append(EventViews(board, cache))
    app.extensions["system"] = system = SystemView()
    events.listeners.append(system)
    app.register_blueprint(routes.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(page.bp)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    tracing.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    return app


def _start_request():
    given = request.environ.get("HTTP_X_REQUEST_ID", "")
    valid = 0 < len(given) <= 64 and set(given) <= REQUEST_ID_CHARS
    context = g._get_current_object()  # one proxy lookup, not two
    context.request_id = rid = given if valid else unique_id()
    context.started = time.perf_counter()
    request_id.set(rid)


def _finish_request(response):
    # The request read once: each access through Flask's proxies costs a context lookup (~1 µs), and
    # a cached lookup is ~100 µs in all.
    req, context = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    response.headers["X-Request-ID"] = getattr(context, "request_id", "-")
    elapsed = time.perf_counter() - getattr(context, "started", time.perf_counter())
    # The URL rule, not the path: unknown paths must not make a new time series each.
    route, method, status = (req.url_rule.rule if req.url_rule else "unmatched"), req.method, response.status_code
    counted, timed = _series(route, method, status)
    counted.inc()
    timed.observe(elapsed)
    if status == 200 and req.endpoint == "api.place_order":
        current_app.extensions["system"].trade_answered(elapsed)
    log.info("%s %s %d %.2fms", method, req.path, status, elapsed * 1000)
    return response


@functools.cache
def _series(route, method, status):
    """The request counter and duration histogram of one route, method and status: ``labels`` looks
    them up anew at each call (~2 µs each, of a cached lookup's ~75 µs in-process)."""
    return HTTP_REQUESTS.labels(route, method, status), HTTP_DURATION.labels(route, method)


def _http_error(exc):
    # Keep werkzeug's status and headers (e.g. Allow on a 405), with the JSON error body.
    response = exc.get_response()
    response.set_data(json.dumps({"error": {"code": exc.code, "message": exc.description}}))
    response.content_type = "application/json"
    return response


def _internal_error(exc):
    log.exception("unhandled error")
    return {"error": {"code": 500, "message": "internal server error"}}, 500

"""A server span per traced HTTP request, continuing the trace of a caller that sent ``traceparent``.

opentelemetry-instrumentation-flask fits waitress's thread-per-request model, but it gathers every
WSGI attribute twice, records metrics of its own and makes its span for every request: in-process,
it took a bare Flask request from 100 µs to 370-570 µs (on a busy machine). This WSGI middleware
makes the one span needed, with four attributes, and only for the requests ``tracing.traces``. It
wraps the app instead of hooking into Flask so that an untraced request costs a dict lookup and a
random draw: Flask's before/after/teardown hooks, even returning at once, added ~15 µs to every
request (a bare one went from 120 to 135 µs of CPU).
"""
from flask import g, request
from werkzeug.datastructures import EnvironHeaders

from broker import tracing


def init_app(app):
    """Trace the app's requests, if tracing is on: with it off the app is left as it is."""
    if tracing.enabled():
        app.wsgi_app = _traced(app.wsgi_app)


def _traced(wsgi_app):
    def traced_app(environ, start_response):
        if not tracing.traces(client_traced="HTTP_TRACEPARENT" in environ):
            return wsgi_app(environ, start_response)
        method = environ["REQUEST_METHOD"]
        with tracing.root_span(method, EnvironHeaders(environ), {"http.request.method": method}) as span:
            def start_traced_response(status, headers, exc_info=None):
                # Flask starts the response inside its request context, where the request is routed.
                route = request.url_rule.rule if request.url_rule else "unmatched"
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "url.path": request.path,
                                     "bazaar.request_id": g.get("request_id", "-")})
                tracing.set_status(span, "http.response.status_code", int(status.split(" ", 1)[0]))
                return start_response(status, headers, exc_info)

            return wsgi_app(environ, start_traced_response)

    return traced_app

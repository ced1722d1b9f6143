"""Tracing with OpenTelemetry: one trace per HTTP request, carried across the broker in AMQP headers.

The context travels as W3C ``traceparent`` (and ``tracestate``) in each message's headers table:
``inject`` puts the current span's there, ``span`` continues the trace a message carries. This
thin propagator replaces opentelemetry-instrumentation-pika, which wraps ``basic_consume``
callbacks and ``basic_publish``: here a request is handed from the consumer's thread to a
handler thread, and replies and stream entries are published from the connection's own thread
(``add_callback_threadsafe``), so its spans would end at the hand-off and carry the wrong parent.

Only an HTTP request starts a trace (``traces`` picks TRACE_SAMPLE_RATIO of them, ``root_span``
makes the frontend's span); every other span continues the trace its message or its thread
carries, and none is made without one. So a request that is not traced costs only the frontend's
draw (under 1 µs) and ~2 µs per message to find no context to inject, where even a span the SDK
does not record costs ~20 µs, a tenth of a cache hit.
Tracing is off unless ``setup`` finds OTEL_EXPORTER_OTLP_ENDPOINT or TRACE_DIR set; then every
helper returns at once.
"""
import contextlib
import functools
import os
import random
import sys
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

from runtime.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["SpanKind", "enabled", "inject", "root_span", "set_status", "setup", "span",
           "span_until_done", "traces"]

_tracer: trace.Tracer | None = None  # an SDK tracer while tracing is on
_sample_ratio = 1.0
# What ``span`` gives with tracing off or outside a trace: its set_attribute etc. do nothing.
_OFF = contextlib.nullcontext(trace.INVALID_SPAN)
_UNTRACED = object()  # what ``_parent`` finds outside a trace


def setup(settings: Settings, service: str) -> None:
    """Turn tracing on for this process, named ``service``, if the settings ask for an exporter."""
    global _tracer, _sample_ratio
    exporter = _exporter(settings, service)
    if exporter is None:
        return
    # Imported only when on: the SDK costs start-up time and memory a process without tracing need not pay.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The provider flushes its batch at exit, which a SIGTERM'd service reaches too.
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "service.namespace": settings.namespace}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer, _sample_ratio = provider.get_tracer("stock-bazaar"), settings.trace_sample_ratio


def _exporter(settings: Settings, service: str) -> "SpanExporter | None":
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces")
    if settings.trace_dir:
        from opentelemetry.exporter.otlp.json.file import FileSpanExporter
        if settings.trace_dir == "-":
            return FileSpanExporter(stream=sys.stderr)
        os.makedirs(settings.trace_dir, exist_ok=True)
        # A file per process: processes appending to one file could interleave their lines.
        return FileSpanExporter(os.path.join(settings.trace_dir, f"{service}-{os.getpid()}.jsonl"))
    return None


def enabled() -> bool:
    return _tracer is not None


def inject(headers: dict[str, Any]) -> dict[str, Any]:
    """Add the current trace context to an AMQP headers table (a dict); return it."""
    if _tracer is not None:
        propagate.inject(headers)
    return headers


def span(name: str, kind: SpanKind, destination: str, carrier: Any = None,
         attributes: dict[str, Any] | None = None) -> AbstractContextManager[Span]:
    """A context manager for a span of a message to or from ``destination`` (a queue, exchange or
    stream), in the trace ``carrier`` (its headers) holds, or else the current one; none (a span
    that records nothing) outside a trace. An exception that leaves it is recorded as its error."""
    if (context := _parent(carrier)) is _UNTRACED:
        return _OFF
    return _tracer.start_as_current_span(  # type: ignore[union-attr]  # _parent found it on
        name, context=context, kind=kind, attributes=_messaging(destination, attributes))


def span_until_done(name: str, kind: SpanKind, destination: str, start: Callable[[], "Future | None"],
                    carrier: Any = None, attributes: dict[str, Any] | None = None,
                    status: Callable[[Span, Future], None] | None = None) -> "Future | None":
    """``start()`` inside a span like ``span``'s that lasts until the Future it returns is done: for
    work that is answered later, on another thread. ``status(span, future)`` records how it ended
    (else an exception in the Future is the span's error). If ``start`` returns None, declining the
    work (which is then done elsewhere, in a span of its own), its span is never ended, so never exported."""
    if (context := _parent(carrier)) is _UNTRACED:
        return start()
    made = _tracer.start_span(  # type: ignore[union-attr]  # _parent found it on
        name, context=context, kind=kind, attributes=_messaging(destination, attributes))
    try:
        with trace.use_span(made, end_on_exit=False):
            future = start()
    except BaseException as exc:
        made.record_exception(exc)
        made.set_status(trace.StatusCode.ERROR)
        made.end()
        raise
    if future is not None:
        future.add_done_callback(functools.partial(_end, made, status))
    return future


def _end(made: Span, status: Callable[[Span, Future], None] | None, future: Future) -> None:
    if status is not None:
        status(made, future)
    elif (exc := future.exception()) is not None:
        made.record_exception(exc)
        made.set_status(trace.StatusCode.ERROR)
    made.end()


def _parent(carrier: Any) -> Any:
    """The context a span continues: the trace ``carrier`` holds, if given, else the current one
    (None); _UNTRACED if tracing is off or there is no trace."""
    if _tracer is None:
        return _UNTRACED
    if carrier is not None:
        return propagate.extract(carrier) if "traceparent" in carrier else _UNTRACED
    return None if trace.get_current_span().is_recording() else _UNTRACED


def _messaging(destination: str, attributes: dict[str, Any] | None) -> dict[str, Any]:
    return {"messaging.system": "rabbitmq", "messaging.destination.name": destination, **(attributes or {})}


def traces(client_traced: bool) -> bool:
    """Whether to trace an HTTP request: each one whose client sent ``traceparent`` (``client_traced``),
    and TRACE_SAMPLE_RATIO of the others."""
    return _tracer is not None and (client_traced or random.random() < _sample_ratio)


def root_span(name: str, headers: Any, attributes: dict[str, Any]) -> AbstractContextManager[Span]:
    """The span of an HTTP request that ``traces``: in its client's trace, if it sent one, else a new one."""
    assert _tracer is not None, "root_span is only for requests that tracing.traces"
    return _tracer.start_as_current_span(name, context=propagate.extract(headers), kind=SpanKind.SERVER,
                                         attributes=attributes)


def set_status(span: Span, attribute: str, code: int) -> None:
    """Record an HTTP-style status ``code`` on a server span; 5xx marks it as failed."""
    span.set_attribute(attribute, code)
    if code >= 500:
        span.set_status(trace.StatusCode.ERROR)

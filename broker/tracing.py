"""Tracing with OpenTelemetry: one trace per HTTP request, carried across the broker in AMQP headers.

The context travels as W3C ``traceparent`` (and ``tracestate``) in each message's headers table:
``inject`` puts the current span's there, ``span`` continues the trace a message carries. This
thin propagator replaces opentelemetry-instrumentation-pika, which wraps ``basic_consume``
callbacks and ``basic_publish``: here a request is handed from the consumer's thread to a
handler thread, and replies and stream entries are published from the connection's own thread
(``add_callback_threadsafe``), so its spans would end at the hand-off and carry the wrong parent.

Tracing is off unless ``setup`` finds OTEL_EXPORTER_OTLP_ENDPOINT or TRACE_DIR set; then every
helper here returns at once, without touching OpenTelemetry.
"""
import contextlib
import os
import sys

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

__all__ = ["SpanKind", "enabled", "inject", "set_status", "setup", "span"]

_tracer = None  # an SDK tracer while tracing is on
# What ``span`` gives while tracing is off: its set_attribute etc. do nothing.
_OFF = contextlib.nullcontext(trace.INVALID_SPAN)


def setup(settings, service):
    """Turn tracing on for this process, named ``service``, if the settings ask for an exporter."""
    global _tracer
    exporter = _exporter(settings, service)
    if exporter is None:
        return
    # Imported only when on: the SDK costs start-up time and memory a process without tracing need not pay.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # The provider flushes its batch at exit, which a SIGTERM'd service reaches too.
    # The frontend decides whether a request is traced; the services it calls follow its choice.
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "service.namespace": settings.namespace}),
                              sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("stock-bazaar")


def _exporter(settings, service):
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


def enabled():
    return _tracer is not None


def inject(headers):
    """Add the current trace context to an AMQP headers table (a dict); return it."""
    if _tracer is not None:
        propagate.inject(headers)
    return headers


def span(name, kind=SpanKind.INTERNAL, carrier=None, attributes=None):
    """A context manager for a span of the current trace, or of the trace ``carrier`` (message or HTTP
    headers) holds; it records an exception that leaves it as the span's error."""
    if _tracer is None:
        return _OFF
    context = propagate.extract(carrier) if carrier is not None else None
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def set_status(span, attribute, code):
    """Record an HTTP-style status ``code`` on a server span; 5xx marks it as failed."""
    span.set_attribute(attribute, code)
    if code >= 500:
        span.set_status(trace.StatusCode.ERROR)

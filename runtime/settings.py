"""Configuration for every service: each setting declared once (variable, type, default, help),
which ``from_env`` reads and ``--help`` lists."""
import argparse
import dataclasses
import os
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUE_TYPES = ("quorum", "classic")


def setting(env: str, default: Any, help: str, parse: Callable[[str], Any] | None = None) -> Any:
    """A Settings field read from the environment variable ``env``; ``help`` is its line in ``--help``."""
    return dataclasses.field(default=default, metadata={"env": env, "help": help, "parse": parse})


@dataclass(frozen=True)
class Settings:
    amqp_url: str = setting("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F",
                            "broker URL, or several separated by commas for a cluster")
    namespace: str = setting("BAZAAR_NAMESPACE", "bazaar", "prefix of every queue name")
    data_dir: Path = setting("DATA_DIR", Path("data"), "where the CSV files live")
    rpc_timeout: float = setting("RPC_TIMEOUT", 5.0, "seconds to wait for a reply")
    prefetch: int = setting("PREFETCH", 2, "unacked requests per worker thread")
    log_level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING...", str.upper)
    frontend_host: str = setting("FRONTEND_HOST", "127.0.0.1", "address the HTTP server listens on")
    frontend_port: int = setting("FRONTEND_PORT", 8000, "port of the HTTP server")
    # The trades in flight at once go to the order leader together: more threads, larger batches
    # under load (trades at 32 connections: 767/s with 16 threads, 988/s with 32).
    frontend_threads: int = setting("FRONTEND_THREADS", 32, "threads answering HTTP requests")
    frontend_connection_limit: int = setting("FRONTEND_CONNECTION_LIMIT", 10000,
                                             "open HTTP connections held at once")
    frontend_channel_timeout: int = setting("FRONTEND_CHANNEL_TIMEOUT", 30,
                                            "seconds before a silent HTTP connection is closed")
    catalog_threads: int = setting("CATALOG_THREADS", 4, "threads of each catalog replica")
    order_threads: int = setting("ORDER_THREADS", 8, "order worker threads")
    order_batch: int = setting("ORDER_BATCH", 100, "most trades the order leader proposes in one stream entry "
                                                   "(1: one entry per trade, no batching)")
    max_body_bytes: int = setting("MAX_BODY_BYTES", 64 * 1024, "largest accepted request body")
    metrics_host: str = setting("METRICS_HOST", "127.0.0.1", "address of a worker's Prometheus metrics")
    metrics_port: int = setting("METRICS_PORT", 0, "port of a worker's Prometheus metrics, 0 = none; "
                                                   "the frontend serves them on /metrics instead")
    cache_size: int = setting("CACHE_SIZE", 1000, "stock lookups the frontend caches, 0 = no cache")
    queue_type: str = setting("QUEUE_TYPE", "classic", "classic, or quorum: replicated, for a cluster")
    replica_id: int = setting("REPLICA_ID", 0, "which replica of its service this worker is, in its logs "
                                               "and connection names")
    idempotency_window: float = setting("IDEMPOTENCY_WINDOW", 24 * 3600.0,
                                        "seconds a trade id is remembered for retries")
    idempotency_keys: int = setting("IDEMPOTENCY_KEYS", 500_000, "how many trade ids are remembered at most")
    order_stream_max_age: str = setting("ORDER_STREAM_MAX_AGE", "7D",
                                        "how long the order stream keeps entries, when an order worker "
                                        "creates it (see the README to change an existing one)")
    leader_heartbeat: int = setting("LEADER_HEARTBEAT", 1,
                                    "heartbeat timeout (s) of the order queue's consumers: a frozen or "
                                    "cut-off leader loses the queue about 3 times this later")
    fsync_limit: float = setting("FSYNC_LIMIT", 2.0, "seconds an order log write may take before its "
                                                     "replica steps down")
    otel_exporter_otlp_endpoint: str = setting("OTEL_EXPORTER_OTLP_ENDPOINT", "",
                                               "send traces over OTLP/HTTP to this collector, e.g. "
                                               "http://localhost:4318")
    trace_dir: str = setting("TRACE_DIR", "", "write traces as OTLP JSON lines to a file per process in "
                                              "this directory, or to stderr if it is -")
    # A span costs the SDK ~100 µs, as much as a whole cache hit: at 2 % the spans cost ~6 µs a
    # request (docs/design.md, "Tracing across the broker"); 1 traces everything, for debugging.
    trace_sample_ratio: float = setting("TRACE_SAMPLE_RATIO", 0.02, "share of HTTP requests traced, 0 to 1 "
                                                                    "(a request with traceparent always is)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Build settings from environment variables, falling back to the defaults."""
        return cls(**{field.name: _parse(field, environ[field.metadata["env"]])
                      for field in dataclasses.fields(cls) if field.metadata["env"] in environ})

    def __post_init__(self) -> None:
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, not {self.queue_type!r}")
        if not re.fullmatch(r"[1-9][0-9]*[YMDhms]", self.order_stream_max_age):
            raise ValueError(f"ORDER_STREAM_MAX_AGE must be a number and a unit of Y, M, D, h, m or s (7D), "
                             f"not {self.order_stream_max_age!r}")
        if self.order_batch < 1:
            raise ValueError(f"ORDER_BATCH must be at least 1, not {self.order_batch}")
        if not 0 <= self.trace_sample_ratio <= 1:
            raise ValueError(f"TRACE_SAMPLE_RATIO must be from 0 to 1, not {self.trace_sample_ratio!r}")

    @property
    def amqp_urls(self) -> list[str]:
        """The brokers to try in turn: AMQP_URL holds one URL or several separated by commas."""
        return [url.strip() for url in self.amqp_url.split(",") if url.strip()]

    def queue(self, service: str) -> str:
        """Name of a service's request queue, e.g. ``bazaar.catalog``."""
        return f"{self.namespace}.{service}"

    @property
    def events_exchange(self) -> str:
        """The topic exchange services publish events to, e.g. ``bazaar.events``."""
        return f"{self.namespace}.events"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letter"


def _parse(field: dataclasses.Field, value: str) -> Any:
    parse: Callable[[str], Any] = field.metadata["parse"] or field.type  # type: ignore[assignment]
    try:
        return parse(value)
    except ValueError:
        kind = "an integer" if field.type is int else "a number"
        raise ValueError(f"{field.metadata['env']} must be {kind}, not {value!r}") from None


def environment_help() -> str:
    """The ``--help`` text of every setting: its variable, what it does and its default."""
    lines = ["environment variables:"]
    width = max(len(field.metadata["env"]) for field in dataclasses.fields(Settings)) + 1
    for field in dataclasses.fields(Settings):
        default = f"{field.default:g}" if isinstance(field.default, float) else field.default or "unset"
        text = f"{field.metadata['help']} (default {default})"
        lines += textwrap.wrap(text, 100, initial_indent=f"  {field.metadata['env']:<{width}}",
                               subsequent_indent=" " * (width + 2))
    return "\n".join(lines)


def settings_from_cli(package: str, description: str, argv: list[str] | None = None) -> Settings:
    """Answer ``--help`` with the environment variables, then read the settings."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=description,
                                     epilog=environment_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    try:
        return Settings.from_env()
    except ValueError as exc:
        parser.error(str(exc))

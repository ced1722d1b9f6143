"""Configuration for every service, read from the environment in one place."""
import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

QUEUE_TYPES = ("quorum", "classic")


@dataclass(frozen=True)
class Settings:
    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"
    namespace: str = "bazaar"
    data_dir: Path = Path("data")
    rpc_timeout: float = 5.0
    prefetch: int = 2
    log_level: str = "INFO"
    frontend_host: str = "127.0.0.1"
    frontend_port: int = 8000
    frontend_threads: int = 16
    frontend_connection_limit: int = 10000
    frontend_channel_timeout: int = 30
    catalog_threads: int = 4
    order_threads: int = 8
    max_body_bytes: int = 64 * 1024
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    cache_size: int = 1000
    queue_type: str = "classic"
    replica_id: int = 0
    idempotency_window: float = 24 * 3600.0
    idempotency_keys: int = 500_000
    journal_segment_trades: int = 100_000
    order_stream_max_age: str = "7D"
    leader_heartbeat: int = 1
    fsync_limit: float = 2.0

    @classmethod
    def from_env(cls, environ=os.environ):
        """Build settings from environment variables, falling back to the defaults."""
        defaults = cls()

        def env(key, default):
            try:
                return type(default)(environ.get(key, default))
            except ValueError:
                kind = "an integer" if isinstance(default, int) else "a number"
                raise ValueError(f"{key} must be {kind}, not {environ[key]!r}") from None

        return cls(
            amqp_url=env("AMQP_URL", defaults.amqp_url),
            namespace=env("BAZAAR_NAMESPACE", defaults.namespace),
            data_dir=Path(environ.get("DATA_DIR", defaults.data_dir)),
            rpc_timeout=env("RPC_TIMEOUT", defaults.rpc_timeout),
            prefetch=env("PREFETCH", defaults.prefetch),
            log_level=env("LOG_LEVEL", defaults.log_level).upper(),
            frontend_host=env("FRONTEND_HOST", defaults.frontend_host),
            frontend_port=env("FRONTEND_PORT", defaults.frontend_port),
            frontend_threads=env("FRONTEND_THREADS", defaults.frontend_threads),
            frontend_connection_limit=env("FRONTEND_CONNECTION_LIMIT", defaults.frontend_connection_limit),
            frontend_channel_timeout=env("FRONTEND_CHANNEL_TIMEOUT", defaults.frontend_channel_timeout),
            catalog_threads=env("CATALOG_THREADS", defaults.catalog_threads),
            order_threads=env("ORDER_THREADS", defaults.order_threads),
            max_body_bytes=env("MAX_BODY_BYTES", defaults.max_body_bytes),
            metrics_host=env("METRICS_HOST", defaults.metrics_host),
            metrics_port=env("METRICS_PORT", defaults.metrics_port),
            cache_size=env("CACHE_SIZE", defaults.cache_size),
            queue_type=env("QUEUE_TYPE", defaults.queue_type),
            replica_id=env("REPLICA_ID", defaults.replica_id),
            idempotency_window=env("IDEMPOTENCY_WINDOW", defaults.idempotency_window),
            idempotency_keys=env("IDEMPOTENCY_KEYS", defaults.idempotency_keys),
            journal_segment_trades=env("JOURNAL_SEGMENT_TRADES", defaults.journal_segment_trades),
            order_stream_max_age=env("ORDER_STREAM_MAX_AGE", defaults.order_stream_max_age),
            leader_heartbeat=env("LEADER_HEARTBEAT", defaults.leader_heartbeat),
            fsync_limit=env("FSYNC_LIMIT", defaults.fsync_limit),
        )

    def __post_init__(self):
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, not {self.queue_type!r}")
        if not re.fullmatch(r"[1-9][0-9]*[YMDhms]", self.order_stream_max_age):
            raise ValueError(f"ORDER_STREAM_MAX_AGE must be a number and a unit of Y, M, D, h, m or s (7D), "
                             f"not {self.order_stream_max_age!r}")

    @property
    def amqp_urls(self):
        """The brokers to try in turn: AMQP_URL holds one URL or several separated by commas."""
        return [url.strip() for url in self.amqp_url.split(",") if url.strip()]

    def queue(self, service):
        """Name of a service's request queue, e.g. ``bazaar.catalog``."""
        return f"{self.namespace}.{service}"

    @property
    def events_exchange(self):
        """The topic exchange services publish events to, e.g. ``bazaar.events``."""
        return f"{self.namespace}.events"

    @property
    def dead_letter_queue(self):
        return f"{self.namespace}.dead-letter"


ENVIRONMENT_HELP = """environment variables:
  AMQP_URL          broker URL, or several separated by commas for a cluster
                    (default amqp://guest:guest@localhost:5672/%2F)
  BAZAAR_NAMESPACE  prefix of every queue name (default bazaar)
  DATA_DIR          where the CSV files live (default ./data)
  RPC_TIMEOUT       seconds to wait for a reply (default 5)
  PREFETCH          unacked requests per worker thread (default 2)
  LOG_LEVEL         DEBUG, INFO, WARNING... (default INFO)
  FRONTEND_HOST, FRONTEND_PORT, FRONTEND_THREADS   HTTP server (default 127.0.0.1, 8000, 16)
  FRONTEND_CONNECTION_LIMIT   open HTTP connections held at once (default 10000)
  FRONTEND_CHANNEL_TIMEOUT    seconds before a silent HTTP connection is closed (default 30)
  CATALOG_THREADS, ORDER_THREADS                    worker threads (default 4, 8)
  MAX_BODY_BYTES    largest accepted request body (default 65536)
  CACHE_SIZE        stock lookups the frontend caches, 0 = no cache (default 1000)
  QUEUE_TYPE        classic, or quorum: replicated, for a cluster (default classic)
  REPLICA_ID        which order worker replica this is, in its logs and connection names (default 0)
  IDEMPOTENCY_WINDOW, IDEMPOTENCY_KEYS   how long (s) and how many trade ids are
                    remembered for retries (default 86400, 500000)
  JOURNAL_SEGMENT_TRADES  trades per catalog journal file before it rotates (default 100000)
  ORDER_STREAM_MAX_AGE    how long the order stream keeps entries, when an order worker
                    creates it (default 7D; see the README to change an existing one)
  LEADER_HEARTBEAT  heartbeat timeout (s) of the order queue's consumers: a frozen or cut-off
                    leader loses the queue about 3 times this later (default 1)
  FSYNC_LIMIT       seconds an order log write may take before its replica steps down (default 2)
  METRICS_HOST, METRICS_PORT   a worker's Prometheus metrics (default 127.0.0.1, 0 = none);
                    the frontend serves them on /metrics instead"""


def settings_from_cli(package, description, argv=None):
    """Answer ``--help`` with the environment variables, then read the settings."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=description,
                                     epilog=ENVIRONMENT_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    try:
        return Settings.from_env()
    except ValueError as exc:
        parser.error(str(exc))

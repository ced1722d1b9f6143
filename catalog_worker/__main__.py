"""Run the catalog worker: ``python -m catalog_worker``."""
from broker import RpcServer, tracing
from broker.logs import setup_logging
from broker.server import serve_until_signalled
from broker.settings import settings_from_cli
from catalog_worker.service import SERVICE, CatalogService
from catalog_worker.store import CatalogStore


def main(argv=None):
    settings = settings_from_cli("catalog_worker", "Stock Bazaar catalog worker: stock lookups and trades.", argv)
    setup_logging(SERVICE, settings.log_level)
    tracing.setup(settings, SERVICE)
    store = CatalogStore(settings.data_dir, settings.idempotency_window, settings.idempotency_keys,
                         settings.journal_segment_trades)
    service = CatalogService(store, settings)
    try:
        serve_until_signalled(RpcServer(settings, SERVICE, service.handlers, settings.catalog_threads))
    finally:
        store.close()


if __name__ == "__main__":
    main()

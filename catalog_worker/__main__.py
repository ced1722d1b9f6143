"""Run the catalog worker: ``python -m catalog_worker``."""
from broker import RpcServer
from catalog_worker.service import SERVICE, CatalogService
from catalog_worker.store import CatalogStore
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.metrics import MetricsServer
from runtime.settings import settings_from_cli


def main(argv=None):
    settings = settings_from_cli("catalog_worker", "Stock Bazaar catalog worker: stock lookups and trades.", argv)
    setup_logging(SERVICE, settings.log_level)
    store = CatalogStore(settings.data_dir, settings.idempotency_window, settings.idempotency_keys,
                         settings.journal_segment_trades)
    service = CatalogService(store, settings)
    # Stopped in reverse: the server finishes the requests in hand before the store's last checkpoint.
    Supervisor([store, MetricsServer(settings),
                RpcServer(settings, SERVICE, service.handlers, settings.catalog_threads)]).run()


if __name__ == "__main__":
    main()

"""Run a catalog replica: ``python -m catalog_worker``."""
from broker import RpcServer, tracing
from catalog_worker.service import SERVICE, CatalogService
from ledger.orders import OrderLog
from ledger.replication import ReplicatedLog
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.metrics import MetricsServer
from runtime.settings import settings_from_cli


def main(argv=None):
    settings = settings_from_cli("catalog_worker", "Stock Bazaar catalog replica: stock lookups.", argv)
    name = f"{SERVICE}-{settings.replica_id}"
    setup_logging(name, settings.log_level)
    tracing.setup(settings, name)
    # A read replica of the order stream: the same log and stocks as every order replica, never leading.
    orders = OrderLog(settings.data_dir, settings.idempotency_window, settings.idempotency_keys)
    ledger = ReplicatedLog(settings, orders, name)
    service = CatalogService(ledger, settings)
    try:
        # Any number of replicas consume the catalog's queue side by side: each answers from its own table.
        Supervisor([MetricsServer(settings), ledger, RpcServer(settings, SERVICE, service.handlers,
                                                                 settings.catalog_threads, connection_name=name)]).run()
    finally:
        orders.close()


if __name__ == "__main__":
    main()

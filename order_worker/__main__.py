"""Run the order worker: ``python -m order_worker``."""
from broker import RpcClient, RpcServer
from order_worker.replication import DiskWatch, ReplicatedLog
from order_worker.service import SERVICE, OrderService, Reconciler
from order_worker.store import OrderLog
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.metrics import MetricsServer
from runtime.settings import settings_from_cli


def main(argv=None):
    settings = settings_from_cli(
        "order_worker", "Stock Bazaar order worker: executes trades, keeps the order log.", argv)
    setup_logging(f"{SERVICE}-{settings.replica_id}", settings.log_level)
    catalog = RpcClient(settings, SERVICE)
    orders = OrderLog(settings.data_dir, settings.idempotency_window, settings.idempotency_keys)
    # A replica whose log cannot follow the stream must not lead: its failure stops the worker.
    replicated = ReplicatedLog(settings, orders)
    # Half the frontend's timeout, so the frontend hears about a slow catalog before it gives up.
    service = OrderService(replicated, catalog, settings.rpc_timeout / 2)
    # The queue's single active consumer is the leader; every other replica follows the stream.
    server = RpcServer(settings, SERVICE, service.handlers, settings.order_threads, single_active=True,
                       on_standby=replicated.resign)
    replicated.on_step_down = server.step_down  # a leader whose disk fails gives the queue to a standby
    try:
        Supervisor([MetricsServer(settings), catalog, replicated, DiskWatch(replicated), Reconciler(service),
                    server]).run()
    finally:
        orders.close()


if __name__ == "__main__":
    main()

"""Run the order worker: ``python -m order_worker``."""
from broker import RpcClient, RpcServer, tracing
from ledger.orders import OrderLog
from ledger.replication import DiskWatch, ReplicatedLog
from order_worker.service import SERVICE, OrderService, Pinger
from order_worker.status import Announcer
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.metrics import MetricsServer
from runtime.settings import settings_from_cli


def main(argv=None):
    settings = settings_from_cli(
        "order_worker", "Stock Bazaar order worker: executes trades, keeps the order log.", argv)
    # Each replica's connections carry its name, e.g. bazaar.order-0 in the management UI.
    name = f"{SERVICE}-{settings.replica_id}"
    setup_logging(name, settings.log_level)
    tracing.setup(settings, name)
    client = RpcClient(settings, SERVICE, connection_name=name)
    orders = OrderLog(settings.data_dir, settings.idempotency_window, settings.idempotency_keys)
    # A replica whose log cannot follow the stream must not lead: its failure stops the worker.
    ledger = ReplicatedLog(settings, orders, name)
    service = OrderService(ledger, settings)
    ledger.announce = service.announce
    # The queue's single active consumer is the leader; every other replica follows the stream.
    server = RpcServer(settings, SERVICE, service.handlers, settings.order_threads, single_active=True,
                       on_standby=ledger.resign, connection_name=name, quick=service.quick)
    ledger.on_step_down = server.step_down  # a leader whose disk fails gives the queue to a standby
    try:
        Supervisor([MetricsServer(settings), client, ledger, DiskWatch(ledger), server,
                    Announcer(settings, ledger), Pinger(ledger, client, settings.rpc_timeout)]).run()
    finally:
        orders.close()


if __name__ == "__main__":
    main()

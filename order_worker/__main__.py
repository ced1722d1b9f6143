"""Run the order worker: ``python -m order_worker``."""
import threading

from broker import RpcClient, RpcServer
from broker.logs import setup_logging
from broker.server import serve_until_signalled
from broker.settings import settings_from_cli
from order_worker.replication import ReplicatedLog
from order_worker.service import SERVICE, OrderService
from order_worker.store import OrderLog


def main(argv=None):
    settings = settings_from_cli(
        "order_worker", "Stock Bazaar order worker: executes trades, keeps the order log.", argv)
    setup_logging(f"{SERVICE}-{settings.replica_id}", settings.log_level)
    catalog = RpcClient(settings, SERVICE)
    # Half the frontend's timeout, so the frontend hears about a slow catalog before it gives up.
    orders = OrderLog(settings.data_dir, settings.idempotency_window, settings.idempotency_keys)
    replicated = ReplicatedLog(settings, orders)
    service = OrderService(replicated, catalog, settings.rpc_timeout / 2)
    # The queue's single active consumer is the leader; every other replica follows the stream.
    server = RpcServer(settings, SERVICE, service.handlers, settings.order_threads, single_active=True,
                       on_standby=replicated.resign)
    stopping = threading.Event()
    # A replica whose log cannot follow the stream must not lead: it stops, and says why.
    threads = [threading.Thread(target=replicated.run, args=(stopping, server.fail, server.step_down),
                                name="stream"),
               threading.Thread(target=replicated.watch_disk, args=(stopping,), name="disk", daemon=True),
               threading.Thread(target=service.reconcile_when_uncertain, args=(stopping,),
                                name="reconcile", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        serve_until_signalled(server)
    finally:
        stopping.set()
        service.uncertain.set()  # wakes the reconciler, which then sees the stop
        for thread in threads:  # the reconciler's catalog calls end within the catalog timeout
            thread.join()
        catalog.close()
        orders.close()


if __name__ == "__main__":
    main()

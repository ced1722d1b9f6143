"""Run the order worker: ``python -m order_worker``."""
import threading

from broker import RpcClient, RpcServer
from broker.logs import setup_logging
from broker.server import serve_until_signalled
from broker.settings import settings_from_cli
from order_worker.service import SERVICE, OrderService
from order_worker.store import OrderLog


def main(argv=None):
    settings = settings_from_cli(
        "order_worker", "Stock Bazaar order worker: executes trades, keeps the order log.", argv)
    setup_logging(SERVICE, settings.log_level)
    catalog = RpcClient(settings, SERVICE)
    # Half the frontend's timeout, so the frontend hears about a slow catalog before it gives up.
    orders = OrderLog(settings.data_dir)
    service = OrderService(orders, catalog, settings.rpc_timeout / 2)
    stopping = threading.Event()
    reconciler = threading.Thread(target=service.reconcile_when_uncertain, args=(stopping,),
                                  name="reconcile", daemon=True)
    reconciler.start()
    try:
        serve_until_signalled(RpcServer(settings, SERVICE, service.handlers, settings.order_threads))
    finally:
        stopping.set()
        service.uncertain.set()  # wakes the reconciler, which then sees the stop
        reconciler.join()  # its catalog calls end within the catalog timeout
        catalog.close()
        orders.close()


if __name__ == "__main__":
    main()

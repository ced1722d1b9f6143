"""Serve the frontend with waitress: ``python -m frontend``."""
from broker import RpcClient, tracing
from broker.batch import Batcher
from broker.events import Subscriber
from frontend import create_app
from frontend.server import HttpServer
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.settings import settings_from_cli
from trading.status import ORDER_STATUS


def main(argv=None):
    settings = settings_from_cli("frontend", "Stock Bazaar frontend: the HTTP API.", argv)
    setup_logging("frontend", settings.log_level)
    tracing.setup(settings, "frontend")
    rpc = RpcClient(settings, "frontend")
    # Trades made at once go to the order leader together (ORDER_BATCH=1: each alone).
    trades = Batcher(settings, rpc, {"order": {"trade"}} if settings.order_batch > 1 else {}, "frontend")
    events = Subscriber(settings, "frontend-events", keys=("stock.#", ORDER_STATUS))
    app = create_app(settings, trades, events)
    # Stopped in reverse: the HTTP server lets the requests in hand finish before their RPC clients go.
    Supervisor([rpc, trades, events, HttpServer(app, settings)]).run()


if __name__ == "__main__":
    main()

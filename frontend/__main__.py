"""Serve the frontend with waitress: ``python -m frontend``."""
from broker import RpcClient
from broker.events import Subscriber
from frontend import create_app
from frontend.server import HttpServer
from runtime.lifecycle import Supervisor
from runtime.logs import setup_logging
from runtime.settings import settings_from_cli


def main(argv=None):
    settings = settings_from_cli("frontend", "Stock Bazaar frontend: the HTTP API.", argv)
    setup_logging("frontend", settings.log_level)
    rpc, events = RpcClient(settings, "frontend"), Subscriber(settings, "frontend-events")
    app = create_app(settings, rpc, events)
    # Stopped in reverse: the HTTP server lets the requests in hand finish before their RPC client goes.
    Supervisor([rpc, events, HttpServer(app, settings)]).run()


if __name__ == "__main__":
    main()

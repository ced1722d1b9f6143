"""Serve the frontend with waitress: ``python -m frontend``."""
from broker import tracing
from broker.logs import setup_logging
from broker.settings import settings_from_cli
from broker.signals import StopSignal
from frontend import create_app
from frontend.server import create_server, serve


def main(argv=None):
    settings = settings_from_cli("frontend", "Stock Bazaar frontend: the HTTP API.", argv)
    setup_logging("frontend", settings.log_level)
    tracing.setup(settings, "frontend")
    stop_signal = StopSignal()
    app = create_app(settings)
    try:
        # A request in hand waits at most one RPC timeout for its reply.
        serve(create_server(app, settings), stop_signal, grace=settings.rpc_timeout + 1)
    finally:
        app.extensions["rpc"].close()
        if "events" in app.extensions:
            app.extensions["events"].stop()


if __name__ == "__main__":
    main()

"""Serve the frontend with waitress: ``python -m frontend``."""
import signal
import sys

import waitress

from broker.logs import setup_logging
from broker.settings import settings_from_cli
from frontend import create_app


def main(argv=None):
    settings = settings_from_cli("frontend", "Stock Bazaar frontend: the HTTP API.", argv)
    setup_logging("frontend", settings.log_level)
    app = create_app(settings)
    # waitress stops on SystemExit, letting requests in flight finish first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        waitress.serve(app, host=settings.frontend_host, port=settings.frontend_port,
                       threads=settings.frontend_threads, ident="stock-bazaar")
    finally:
        app.extensions["rpc"].close()
        if "events" in app.extensions:
            app.extensions["events"].stop()


if __name__ == "__main__":
    main()

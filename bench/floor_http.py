"""HTTP floor: the frontend's API served from memory by waitress+Flask with the frontend's settings."""
import itertools
import signal
import sys

import waitress
from flask import Flask, request

from runtime.settings import Settings


def create_app():
    """A Flask app answering lookups, trades and order queries from memory, without the broker."""
    app = Flask(__name__)
    orders = {}
    numbers = itertools.count()

    @app.get("/healthz")
    def healthz():
        return {"data": {"status": "ok"}}

    @app.get("/stocks/<name>")
    def lookup(name):
        return {"data": {"name": name, "price": 15.99, "quantity": 100}}

    @app.post("/orders")
    def trade():
        number = next(numbers)
        orders[number] = {"number": number, **request.get_json()}
        return {"data": {"transaction_number": number}}

    @app.get("/orders/<int:number>")
    def order(number):
        if number not in orders:
            return {"error": {"code": 404, "message": "no such order"}}, 404
        return {"data": orders[number]}

    return app


def main():
    settings = Settings.from_env()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    waitress.serve(create_app(), host=settings.frontend_host, port=settings.frontend_port,
                   threads=settings.frontend_threads, ident="stock-bazaar")


if __name__ == "__main__":
    main()

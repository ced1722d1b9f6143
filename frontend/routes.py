"""The HTTP API: each route checks the request and forwards it as one RPC; lookups may hit the cache."""
import re
import uuid
from importlib import resources

from flask import Blueprint, current_app, request

from broker import RpcError

bp = Blueprint("api", __name__)
OPENAPI = resources.files("frontend").joinpath("openapi.json")
ASYNCAPI = resources.files("frontend").joinpath("asyncapi.json")  # the message contract on RabbitMQ
ORDER_NUMBER = re.compile(r"-?[0-9]+")
HIT, MISS = {"X-Cache": "hit"}, {"X-Cache": "miss"}


@bp.get("/stocks")
def list_stocks():
    """Every stock with its trading volume; 304 when the caller's If-None-Match is still current."""
    board = current_app.extensions["board"]
    listing = board.listing()
    if listing is None:
        epoch = board.epoch  # before the call, as for the lookup cache
        min_seq = current_app.extensions["cache"].newest()
        listing = board.fill(current_app.extensions["rpc"].call("catalog", "list", {"min_seq": min_seq}), epoch)
    etag, body = listing
    response = current_app.response_class(body, mimetype="application/json")
    response.set_etag(etag)
    return response.make_conditional(request)


@bp.get("/stocks/<name>")
@bp.get("/stock/<name>")
def lookup(name):
    cache = current_app.extensions["cache"]
    stock = cache.get(name)
    if stock is not None:
        return {"data": stock}, HIT
    epoch = cache.epoch  # before the call: a reset during it means the answer cannot be trusted
    stock = current_app.extensions["rpc"].call("catalog", "lookup", {"name": name, "min_seq": cache.newest(name)})
    cache.fill(name, stock, stock.pop("seq"), epoch)
    return {"data": stock}, MISS


@bp.post("/orders")
@bp.post("/orders/")
@bp.post("/order")
@bp.post("/order/")
def place_order():
    if not request.is_json:
        raise RpcError(415, "the body must be JSON sent as 'Content-Type: application/json'")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RpcError(400, "the body must be a JSON object with 'name', 'quantity' and 'type'")
    # A client retrying with the same Idempotency-Key gets the original trade back.
    trade_id = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
    if len(trade_id) > 200:
        raise RpcError(400, "the Idempotency-Key header must be at most 200 characters")
    args = {key: body.get(key) for key in ("name", "quantity", "type")}
    reply = current_app.extensions["rpc"].call("order", "trade", {**args, "trade_id": trade_id})
    # Before answering, so this client never reads the pre-trade quantity here afterwards.
    current_app.extensions["cache"].changed(args["name"], reply["catalog_seq"])
    return {"data": {"transaction_number": reply["transaction_number"]}}


@bp.get("/orders/<number>")
@bp.get("/order/<number>")
def query_order(number):
    # Decimal digits only: int() alone also takes " 1", "+1", "1_0" and non-ASCII digits such as "١".  # noqa: RUF003
    try:
        if not ORDER_NUMBER.fullmatch(number):
            raise ValueError
        number = int(number)  # ValueError past 4300 digits
    except ValueError:
        raise RpcError(400, f"the order number must be an integer, not {number!r}") from None
    return forward("order", "query", {"number": number})


@bp.get("/openapi.json")
def openapi():
    return _document(OPENAPI)


@bp.get("/asyncapi.json")
def asyncapi():
    return _document(ASYNCAPI)


def _document(resource):
    return current_app.response_class(resource.read_bytes(), mimetype="application/json")


@bp.errorhandler(RpcError)
def rpc_error(exc):
    return exc.envelope(), exc.code


def forward(service, method, args):
    """Make the RPC and answer with its reply: the envelope is the body, its code the status."""
    return {"data": current_app.extensions["rpc"].call(service, method, args)}

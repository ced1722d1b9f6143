"""End to end over HTTP through all three services: each kind of request, request ids, keep-alive.
The contract's every error row is in tests/http/test_http_api.py, answered in memory."""
import time

import pytest

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


def test_lookup(api):
    status, body, headers = api.get("/stocks/GameStart")
    assert (status, body) == (200, {"data": {"name": "GameStart", "price": 15.99, "quantity": 100}})
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) > 0


def test_list_stocks_with_their_trading_volume(api):
    assert api.post("/orders", {**BUY, "quantity": 3})[0] == 200
    status, body, headers = api.get("/stocks")
    assert status == 200 and len(body["data"]) == 10
    assert {"name": "GameStart", "price": 15.99, "quantity": 97, "trading_volume": 3} in body["data"]
    assert api.request("GET", "/stocks", headers={"If-None-Match": headers["ETag"]})[0] == 304


@pytest.mark.parametrize("path", ["/orders", "/orders/", "/order", "/order/"])
def test_trade_and_query(api, path):
    status, body, _ = api.post(path, BUY)
    assert (status, body) == (200, {"data": {"transaction_number": 0}})
    assert api.get("/orders/0")[:2] == (
        200, {"data": {"number": 0, "name": "GameStart", "type": "buy", "quantity": 1}})
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 99


def test_request_id_is_honoured_and_reaches_the_workers(api, stack):
    _, _, headers = api.get("/stocks/FishCo", headers={"X-Request-ID": "trace-me-42"})
    assert headers["X-Request-ID"] == "trace-me-42"
    # The worker logs a request after replying to it, so the line may come a moment later.
    deadline = time.monotonic() + 5
    while "rid=trace-me-42" not in (stack.log_dir / "catalog.log").read_text():
        assert time.monotonic() < deadline, "the request id never reached the catalog's log"
        time.sleep(0.05)
    assert len(api.get("/stocks/FishCo")[2]["X-Request-ID"]) == 32


def test_keep_alive(api):
    api.get("/stocks/FishCo")
    connection = api.conn
    api.post("/orders", BUY)
    api.get("/orders/0")
    assert api.conn is connection and connection.sock is not None

"""The HTTP API's contract and validation, through the real services on an in-memory transport (no broker)."""
import time

import pytest

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


def test_lookup_alias(api):
    assert api.get("/stock/FishCo")[1]["data"]["name"] == "FishCo"


def test_list_stocks_answers_a_new_etag_after_a_trade(api):
    etag = api.get("/stocks")[2]["ETag"]
    assert api.post("/orders", BUY)[0] == 200
    deadline = time.monotonic() + 5
    while (reply := api.request("GET", "/stocks", headers={"If-None-Match": etag}))[0] == 304:
        assert time.monotonic() < deadline, "the listing did not change after a trade"
    assert reply[0] == 200 and reply[2]["ETag"] != etag


def test_lookup_unknown_stock(api):
    assert api.get("/stocks/NoSuchCo")[:2] == (
        404, {"error": {"code": 404, "message": "stock 'NoSuchCo' not found"}})


@pytest.mark.parametrize("body, message", [
    ({"quantity": 1, "type": "buy"}, "'name'"),
    ({"name": 7, "quantity": 1, "type": "buy"}, "'name'"),
    ({"name": "GameStart", "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": 0, "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": -3, "type": "sell"}, "'quantity'"),
    ({"name": "GameStart", "quantity": 1.0, "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": 1.5, "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": True, "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": "1", "type": "buy"}, "'quantity'"),
    ({"name": "GameStart", "quantity": 1}, "'type'"),
    ({"name": "GameStart", "quantity": 1, "type": "short"}, "'type'"),
    ([BUY], "JSON object"),
])
def test_trade_rejects_bad_input(api, body, message):
    status, reply, _ = api.post("/orders", body)
    assert status == 400 and reply["error"]["code"] == 400
    assert message in reply["error"]["message"]
    assert_untouched(api)


def test_trade_rejects_malformed_json(api):
    status, reply, _ = api.request("POST", "/orders", headers={"Content-Type": "application/json"},
                                   raw=b'{"name": "GameStart",')
    assert (status, reply["error"]["code"]) == (400, 400)
    assert_untouched(api)


def test_trade_rejects_non_json_content_type(api):
    status, reply, _ = api.request("POST", "/orders", headers={"Content-Type": "text/plain"},
                                   raw=b'{"name": "GameStart", "quantity": 1, "type": "buy"}')
    assert (status, reply["error"]["code"]) == (415, 415)
    assert_untouched(api)


def test_trade_rejects_oversized_body(api):
    status, reply, _ = api.request("POST", "/orders", headers={"Content-Type": "application/json"},
                                   raw=b'{"name": "' + b"x" * 100_000 + b'"}')
    assert (status, reply["error"]["code"]) == (413, 413)


def test_trade_unknown_stock(api):
    status, reply, _ = api.post("/orders", {**BUY, "name": "NoSuchCo"})
    assert (status, reply["error"]["code"]) == (404, 404)
    assert_untouched(api)


def test_buy_more_than_available(api):
    status, reply, _ = api.post("/orders", {**BUY, "quantity": 101})
    assert (status, reply["error"]) == (409, {"code": 409, "message":
                                              "insufficient quantity of GameStart: 100 available"})
    assert_untouched(api)


def test_buy_exactly_what_is_left(api):
    assert api.post("/orders", {**BUY, "quantity": 100})[0] == 200
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 0
    assert api.post("/orders", BUY)[0] == 409


def test_sell_adds_quantity(api):
    assert api.post("/orders", {**BUY, "type": "sell", "quantity": 5})[0] == 200
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 105


@pytest.mark.parametrize("path, status", [
    ("/orders/abc", 400), ("/orders/1.5", 400), ("/orders/0", 404), ("/orders/-1", 404),
])
def test_query_errors(api, path, status):
    code, reply, _ = api.get(path)
    assert (code, reply["error"]["code"]) == (status, status)


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nowhere", 404), ("POST", "/stocks", 405), ("DELETE", "/orders", 405),
    ("PUT", "/stocks/GameStart", 405), ("GET", "/orders", 405), ("PATCH", "/orders/0", 405),
    ("OPTIONS", "/stocks/GameStart", 405),
])
def test_unknown_path_or_method(api, method, path, status):
    code, reply, headers = api.request(method, path)
    assert (code, reply["error"]["code"]) == (status, status)
    assert headers["Content-Type"] == "application/json"


def assert_untouched(api):
    """A failed request changed no state."""
    assert api.get("/stocks/GameStart")[1]["data"]["quantity"] == 100
    assert api.get("/orders/0")[0] == 404

"""End-to-end trading through all three services: numbering, restarts, concurrency."""
from concurrent.futures import ThreadPoolExecutor

from client.session import Session


def trade(api, name="FishCo", kind="buy", quantity=1):
    status, body, _ = api.post("/orders", {"name": name, "quantity": quantity, "type": kind})
    return status, (body.get("data") or {}).get("transaction_number")


def test_transaction_numbers_count_up_from_zero(api):
    assert [trade(api, kind=kind)[1] for kind in ("buy", "sell", "buy", "buy")] == [0, 1, 2, 3]
    assert api.get("/orders/3")[1]["data"]["type"] == "buy"


def test_a_rejected_trade_takes_no_number(api):
    assert trade(api)[1] == 0
    assert trade(api, quantity=1000)[0] == 409
    assert trade(api, name="NoSuchCo")[0] == 404
    assert trade(api)[1] == 1


def test_restart_keeps_stock_and_numbering(api, stack):
    trade(api, "BoarCo", "buy", 10)
    trade(api, "BoarCo", "sell", 3)
    assert set(stack.stop().values()) == {0}
    stack.start()
    api.close()
    assert api.get("/stocks/BoarCo")[1]["data"]["quantity"] == 93
    assert trade(api, "BoarCo")[1] == 2
    assert api.get("/orders/0")[1]["data"] == {"number": 0, "name": "BoarCo", "type": "buy", "quantity": 10}


def test_concurrent_buyers_never_oversell(stack):
    def buy(_):
        session = Session(stack.url)
        outcome = trade(session, "MenhirCo", "buy", 3)
        session.close()
        return outcome

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(buy, range(60)))
    numbers = sorted(n for status, n in outcomes if status == 200)
    assert len(numbers) == 33 and {s for s, _ in outcomes} == {200, 409}
    assert numbers == list(range(33))
    assert Session(stack.url).get("/stocks/MenhirCo")[1]["data"]["quantity"] == 100 - 33 * 3

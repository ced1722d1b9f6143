"""Unit tests for the stock table every replica derives from the order stream."""
from ledger.orders import Order
from ledger.stocks import DEFAULT_QUANTITY, Stocks


def order(number, name="FishCo", order_type="buy", quantity=10):
    return Order(number, name, order_type, quantity, f"t{number}", number + 1)


def test_a_buy_takes_from_the_stock_and_a_sell_adds_to_it():
    stocks = Stocks()
    stocks.apply(order(0, quantity=30))
    stocks.apply(order(1, order_type="sell", quantity=5))
    assert stocks.get("FishCo")[2:] == (DEFAULT_QUANTITY - 25, 35, 2)  # quantity, volume, seq


def test_no_trade_takes_more_than_there_is_counting_the_orders_in_flight():
    stocks = Stocks()
    assert stocks.available("FishCo", "buy", DEFAULT_QUANTITY)
    assert not stocks.available("FishCo", "buy", DEFAULT_QUANTITY + 1)
    assert not stocks.available("FishCo", "buy", 60, reserved=-50)
    assert stocks.available("FishCo", "buy", 60, reserved=+10)
    assert not stocks.available("NoSuchCo", "sell", 1)


def test_the_table_reads_back_from_its_rows():
    stocks = Stocks()
    stocks.apply(order(0, "BoarCo"))
    assert list(Stocks(stocks.rows())) == list(stocks)

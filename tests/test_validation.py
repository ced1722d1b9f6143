"""Unit tests for the trade request validation both workers share."""
import pytest

from broker import RpcError
from broker.orders import parse_int, parse_trade

GOOD = {"name": "GameStart", "quantity": 2, "type": "sell", "trade_id": "k1"}


def test_a_good_trade_parses():
    assert parse_trade(GOOD) == ("k1", "GameStart", "sell", 2)


@pytest.mark.parametrize("field, value", [
    ("name", None), ("name", ""), ("name", 5), ("name", "x" * 101),
    ("quantity", None), ("quantity", 0), ("quantity", 10**9 + 1), ("quantity", -1), ("quantity", 2.0), ("quantity", True),
    ("quantity", "2"), ("type", "BUY"), ("type", None), ("trade_id", ""), ("trade_id", 3),
])
def test_a_bad_field_is_a_400_naming_it(field, value):
    with pytest.raises(RpcError) as error:
        parse_trade({**GOOD, field: value})
    assert error.value.code == 400 and f"'{field}'" in error.value.message


@pytest.mark.parametrize("value", [None, "1", 1.0, False])
def test_parse_int_rejects_non_integers(value):
    with pytest.raises(RpcError):
        parse_int({"number": value}, "number")

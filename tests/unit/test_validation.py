"""Unit tests for the validation both workers share, and for reading the settings."""
import dataclasses
from pathlib import Path

import pytest

from broker import RpcError
from runtime.settings import Settings, environment_help
from trading.orders import parse_int, parse_trade

GOOD = {"name": "GameStart", "quantity": 2, "type": "sell", "trade_id": "k1"}


def test_a_good_trade_parses():
    assert parse_trade(GOOD) == ("k1", "GameStart", "sell", 2)


@pytest.mark.parametrize("field, value", [
    ("name", None), ("name", ""), ("name", 5), ("name", "x" * 101),
    ("quantity", None), ("quantity", 0), ("quantity", 10**9 + 1), ("quantity", -1),
    ("quantity", 2.0), ("quantity", True),
    ("quantity", "2"), ("type", "BUY"), ("type", None), ("trade_id", ""), ("trade_id", 3),
    ("trade_id", "two\nlines"),
])
def test_a_bad_field_is_a_400_naming_it(field, value):
    with pytest.raises(RpcError) as error:
        parse_trade({**GOOD, field: value})
    assert error.value.code == 400 and f"'{field}'" in error.value.message


@pytest.mark.parametrize("value", [None, "1", 1.0, False])
def test_parse_int_rejects_non_integers(value):
    with pytest.raises(RpcError):
        parse_int({"number": value}, "number")


def test_settings_read_the_environment():
    settings = Settings.from_env({"FRONTEND_PORT": "9000", "RPC_TIMEOUT": "2.5", "BAZAAR_NAMESPACE": "t"})
    assert (settings.frontend_port, settings.rpc_timeout, settings.queue("order")) == (9000, 2.5, "t.order")
    assert Settings.from_env({}).amqp_url == "amqp://guest:guest@localhost:5672/%2F"


def test_a_bad_setting_names_the_variable():
    with pytest.raises(ValueError, match="FRONTEND_PORT must be an integer"):
        Settings.from_env({"FRONTEND_PORT": "eighty"})


def test_amqp_url_lists_several_brokers():
    settings = Settings.from_env({"AMQP_URL": "amqp://a:5681/%2F, amqp://b:5682/%2F,"})
    assert settings.amqp_urls == ["amqp://a:5681/%2F", "amqp://b:5682/%2F"]
    assert Settings().amqp_urls == ["amqp://guest:guest@localhost:5672/%2F"]


def test_an_unknown_queue_type_is_refused():
    with pytest.raises(ValueError, match="QUEUE_TYPE must be one of quorum, classic"):
        Settings.from_env({"QUEUE_TYPE": "stream"})


@pytest.mark.parametrize("age", ["7", "D", "0D", "7 days", "1.5h"])
def test_an_order_stream_max_age_rabbitmq_would_refuse_is_refused(age):
    with pytest.raises(ValueError, match="ORDER_STREAM_MAX_AGE must be a number and a unit"):
        Settings.from_env({"ORDER_STREAM_MAX_AGE": age})
    assert Settings.from_env({"ORDER_STREAM_MAX_AGE": "36h"}).order_stream_max_age == "36h"


def test_help_lists_every_setting_with_its_default():
    text = environment_help()
    for field in dataclasses.fields(Settings):
        line = next(line for line in text.splitlines() if line.split()[:1] == [field.metadata["env"]])
        assert field.metadata["help"].split()[0] in line
    assert "RPC_TIMEOUT                seconds to wait for a reply (default 5)" in text


def test_the_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert [f.metadata["env"] for f in dataclasses.fields(Settings) if f"`{f.metadata['env']}`" not in readme] == []

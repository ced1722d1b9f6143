"""The stock board: newest state per stock, ETag of the listing, trusted only while events flow."""
import json

from frontend.board import StockBoard
from trading.stocks import STOCK_CHANGED

CATALOG = [{"name": "FishCo", "price": 11.5, "quantity": 100, "trading_volume": 0, "seq": 0},
           {"name": "BoarCo", "price": 22.75, "quantity": 100, "trading_volume": 0, "seq": 0}]


def rows(listing):
    return json.loads(listing[1])["data"]


def live_board():
    board = StockBoard()
    board.reset(enabled=True)
    board.fill(CATALOG, board.epoch)
    return board


def changed(quantity, seq, name="FishCo"):
    return {"name": name, "price": 11.5, "quantity": quantity, "trading_volume": 100 - quantity, "seq": seq}


def test_listing_is_sorted_without_seq():
    assert rows(live_board().listing()) == [
        {"name": "BoarCo", "price": 22.75, "quantity": 100, "trading_volume": 0},
        {"name": "FishCo", "price": 11.5, "quantity": 100, "trading_volume": 0}]


def test_an_event_changes_the_listing_and_its_etag():
    board = live_board()
    etag = board.listing()[0]
    board.on_event(STOCK_CHANGED, changed(97, seq=1))
    assert board.listing()[0] != etag
    assert rows(board.listing())[1]["quantity"] == 97


def test_older_news_never_overwrites_newer():
    board = live_board()
    board.on_event(STOCK_CHANGED, changed(95, seq=2))
    board.on_event(STOCK_CHANGED, changed(97, seq=1))
    board.fill(CATALOG, board.epoch)
    assert rows(board.listing())[1]["quantity"] == 95


def test_not_trusted_without_events():
    board = StockBoard()
    assert board.fill(CATALOG, board.epoch) is not None and board.listing() is None
    board = live_board()
    board.reset(enabled=False)
    assert board.listing() is None


def test_a_listing_fetched_before_a_reset_is_not_kept():
    board = StockBoard()
    board.reset(enabled=True)
    epoch = board.epoch
    board.reset(enabled=True)  # the events connection came back while the catalog was asked
    board.fill(CATALOG, epoch)
    assert board.listing() is None


def test_malformed_events_are_ignored():
    board = live_board()
    before = board.listing()
    for event in ({"name": "FishCo"}, {**changed(1, seq=5), "seq": "5"}, {**changed(1, seq=5), "name": 3}):
        board.on_event(STOCK_CHANGED, event)
    board.on_event("other", changed(1, seq=5))
    assert board.listing() == before

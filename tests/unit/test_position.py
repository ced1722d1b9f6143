"""Unit tests for the file in which a replica saves its place in the order stream."""
from ledger.orders import Order
from ledger.position import Position, PositionFile, read_position
from ledger.stocks import Stocks


def position(offset=7, stocks=None):
    return Position(offset, 3, "entry-6", stocks or Stocks())


def test_a_saved_position_reads_back(tmp_path):
    stocks = Stocks()
    stocks.apply(Order(2, "BoarCo", "buy", 4, "t2", 3))
    PositionFile(tmp_path / "stream_position").save(position(stocks=stocks))
    saved = read_position(tmp_path / "stream_position")
    assert saved[:3] == (7, 3, "entry-6") and list(saved.stocks) == list(stocks)


def test_each_save_replaces_the_last_in_whole_pages(tmp_path):
    path = tmp_path / "stream_position"
    file = PositionFile(path)
    many = Stocks([(f"Stock{i}", 1.0, 100, 0, 0) for i in range(300)])  # more than a page
    file.save(position(100, many))
    assert path.stat().st_size == 3 * 4096
    file.save(position(101))  # shorter: what the longer one left is cut away
    assert path.stat().st_size == 4096 and read_position(path).offset == 101
    assert len(list(read_position(path).stocks)) == len(list(Stocks()))


def test_no_file_or_an_unreadable_one_is_no_position(tmp_path):
    path = tmp_path / "stream_position"
    assert read_position(path) is None
    path.write_text("12 4 -\n")  # from before the stocks were saved with it
    assert read_position(path) is None
    path.write_text("12 four - []\n")
    assert read_position(path) is None


def test_an_unknown_last_entry_reads_back_as_none(tmp_path):
    PositionFile(tmp_path / "stream_position").save(Position(0, 0, None, Stocks()))
    assert read_position(tmp_path / "stream_position").last_id is None

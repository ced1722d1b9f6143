"""Unit tests for the order log: gapless numbers, dedupe, recovery."""
import pytest

from ledger.orders import COLUMNS, Corrupt, Order, OrderLog, decode


def record(log, trade_id, name="FishCo", order_type="buy", quantity=1):
    """Append a trade with the next number, as a replica accepting it from the stream does."""
    order = Order(log.next_number, name, order_type, quantity, trade_id, log.next_number + 1)
    log.append(order)
    return order


def test_numbers_start_at_zero_and_have_no_gaps(tmp_path):
    log = OrderLog(tmp_path)
    numbers = [record(log, f"t{n}").number for n in range(5)]
    assert numbers == [0, 1, 2, 3, 4]
    assert log.get(2).trade_id == "t2" and log.get(5) is None and log.get(-1) is None


def test_numbering_continues_after_a_restart(tmp_path):
    log = OrderLog(tmp_path)
    record(log, "t1")
    record(log, "t2", "BoarCo", "sell", 2)
    log.close()
    again = OrderLog(tmp_path)
    assert again.find("t2").number == 1
    assert again.find("t1").number == 0 and record(again, "t3").number == 2


def test_append_takes_only_the_next_number(tmp_path):
    log = OrderLog(tmp_path)
    log.append(Order(0, "FishCo", "buy", 1, "t0", 1))
    with pytest.raises(ValueError):
        log.append(Order(2, "FishCo", "buy", 1, "t2", 2))
    assert log.next_number == 1


def test_orders_are_read_back_from_disk_after_a_restart(tmp_path):
    log = OrderLog(tmp_path)
    for n in range(2000):
        record(log, f"trade-{n}", "FishCo", "buy" if n % 3 else "sell", n % 7 + 1)
    log.close()
    again = OrderLog(tmp_path)
    assert again.next_number == 2000
    assert again.get(1234) == Order(1234, "FishCo", "buy", 3, "trade-1234", 1235)
    assert again.get(0).type == "sell" and again.get(2000) is None
    assert again.append(Order(2000, "BoarCo", "sell", 1, "a,quoted \"id\"", 2001)) is None
    assert again.get(2000).trade_id == "a,quoted \"id\""


def test_keys_beyond_the_window_are_forgotten(tmp_path):
    log = OrderLog(tmp_path, window_keys=10)
    for n in range(30):
        record(log, f"t{n}")
    assert log.find("t19") is None and log.find("t20").number == 20
    log.close()
    again = OrderLog(tmp_path, window_keys=10)  # reads only the tail
    assert again.find("t19") is None and again.find("t29").number == 29


def test_every_line_carries_the_time_and_a_checksum_of_itself(tmp_path):
    log = OrderLog(tmp_path)
    log.append(Order(0, "FishCo", "buy", 1, 'a,"quoted" id', 1, 1764620000123))
    log.close()
    line = (tmp_path / "order_log.csv").read_bytes().splitlines()[1]
    assert line.startswith(b'0,FishCo,buy,1,"a,""quoted"" id",1,1764620000123,')
    assert decode(line, 0) == Order(0, "FishCo", "buy", 1, 'a,"quoted" id', 1, 1764620000123)
    with pytest.raises(Corrupt, match="transaction 0"):
        decode(line.replace(b"FishCo", b"FishCa"), 0)


def test_an_old_log_is_migrated_to_the_checksummed_format_once(tmp_path):
    path = tmp_path / "order_log.csv"
    path.write_bytes(b"transaction_number,stock_name,order_type,trade_quantity,trade_id,catalog_seq\r\n"
                     b"0,FishCo,buy,1,t0,1\r\n1,BoarCo,sell,2,t1,2\r\n1,Boar")  # a torn last line too
    log = OrderLog(tmp_path)
    assert log.next_number == 2 and log.find("t1") == Order(1, "BoarCo", "sell", 2, "t1", 2, 0)
    log.close()
    migrated = path.read_bytes()
    assert migrated.splitlines()[0] == ",".join(COLUMNS).encode()
    OrderLog(tmp_path).close()
    assert path.read_bytes() == migrated  # the same bytes a replica that rebuilt from the stream writes
    rebuilt = OrderLog(tmp_path / "rebuilt")  # old stream entries carry no time either
    rebuilt.append(Order(0, "FishCo", "buy", 1, "t0", 1))
    rebuilt.append(Order(1, "BoarCo", "sell", 2, "t1", 2))
    rebuilt.close()
    assert (tmp_path / "rebuilt" / "order_log.csv").read_bytes() == migrated


def test_a_damaged_line_is_cut_off_with_all_after_it_and_the_file_kept(tmp_path):
    log = OrderLog(tmp_path)
    for n in range(5):
        record(log, f"t{n}")
    log.close()
    path = tmp_path / "order_log.csv"
    original = path.read_bytes()
    path.write_bytes(original.replace(b"t2,3,", b"t2,4,"))  # a complete line, one digit changed
    again = OrderLog(tmp_path)
    assert again.next_number == 2 and again.find("t1").number == 1
    assert (tmp_path / "order_log.csv.damaged-2").read_bytes() == original.replace(b"t2,3,", b"t2,4,")


def test_rewind_makes_the_window_what_it_was_before_a_number(tmp_path):
    log = OrderLog(tmp_path, window_keys=3)
    for n in range(6):
        record(log, f"t{n}")
    log.rewind(3)
    assert [log.find(f"t{n}") is not None for n in range(6)] == [True, True, True, False, False, False]

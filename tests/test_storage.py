"""Unit tests for the crash-safe CSV files."""
import pytest

from broker.storage import AppendLog, read_table, replace_atomically

HEADER = ("a", "b")


def test_replace_atomically_round_trips(tmp_path):
    path = tmp_path / "t.csv"
    replace_atomically(path, HEADER, [(1, "x"), (2, "y, with comma")])
    assert read_table(path, HEADER) == [["1", "x"], ["2", "y, with comma"]]
    assert not (tmp_path / "t.csv.tmp").exists()


def test_read_table_rejects_a_foreign_file(tmp_path):
    (tmp_path / "t.csv").write_text("other,header\n")
    with pytest.raises(ValueError, match="expected header"):
        read_table(tmp_path / "t.csv", HEADER)


def test_append_log_keeps_records_across_reopen(tmp_path):
    log, rows = AppendLog.open(tmp_path / "log.csv", HEADER)
    assert rows == []
    log.append((1, "x"))
    log.append((2, "y"))
    log.close()
    assert AppendLog.open(tmp_path / "log.csv", HEADER)[1] == [["1", "x"], ["2", "y"]]


def test_append_log_cuts_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,x\n2,y\n3,tor")
    log, rows = AppendLog.open(path, HEADER)
    assert rows == [["1", "x"], ["2", "y"]]
    assert "torn last line" in caplog.text
    log.append((3, "z"))
    log.close()
    assert path.read_text() == "a,b\n1,x\n2,y\n3,z\n"


def test_a_log_has_one_writer_at_a_time(tmp_path):
    log, _ = AppendLog.open(tmp_path / "log.csv", HEADER)
    with pytest.raises(RuntimeError, match="in use"):
        AppendLog.open(tmp_path / "log.csv", HEADER)
    log.close()
    AppendLog.open(tmp_path / "log.csv", HEADER)[0].close()

"""Unit tests for the crash-safe CSV files, the line index and full-disk handling."""
import errno
import logging
import os
import random

import pytest

from broker.server import answer
from storage.files import AppendLog, DiskFull, LineIndex, iter_rows, read_table, replace_atomically

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
    log = AppendLog.open(tmp_path / "log.csv", HEADER)
    assert read_table(log.path, HEADER) == []
    assert log.append((1, "x")) == len("a,b\r\n")
    log.append((2, "y"))
    log.close()
    assert list(iter_rows(tmp_path / "log.csv", HEADER)) == [["1", "x"], ["2", "y"]]


def test_append_log_cuts_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,x\n2,y\n3,tor")
    log = AppendLog.open(path, HEADER)
    assert read_table(log.path, HEADER) == [["1", "x"], ["2", "y"]]
    assert "torn last line" in caplog.text
    log.append((3, "z"))
    log.close()
    assert path.read_text() == "a,b\n1,x\n2,y\n3,z\n"


def test_a_log_has_one_writer_at_a_time(tmp_path):
    log = AppendLog.open(tmp_path / "log.csv", HEADER)
    with pytest.raises(RuntimeError, match="in use"):
        AppendLog.open(tmp_path / "log.csv", HEADER)
    log.close()
    AppendLog.open(tmp_path / "log.csv", HEADER).close()


def fill_disk_after(monkeypatch, nbytes):
    """Make os.write write at most ``nbytes`` more bytes, then fail with ENOSPC; return the undo."""
    real_write, budget = os.write, [nbytes]

    def write(fd, data):
        if not budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, data[:budget[0]])
        budget[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)
    return lambda: monkeypatch.setattr(os, "write", real_write)


def test_a_full_disk_is_refused_and_leaves_no_partial_line(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "storage.files")
    log = AppendLog.open(tmp_path / "log.csv", HEADER)
    log.append((1, "x"))
    before = (tmp_path / "log.csv").read_bytes()
    free_space = fill_disk_after(monkeypatch, 3)  # part of the next line fits
    for _ in range(3):
        with pytest.raises(DiskFull, match="insufficient storage"):
            log.append((2, "a longer record"))
        assert (tmp_path / "log.csv").read_bytes() == before
    free_space()
    log.append((2, "y"))
    log.append((3, "z"))
    assert read_table(log.path, HEADER) == [["1", "x"], ["2", "y"], ["3", "z"]]
    messages = [(r.levelname, r.getMessage().split(" ")[0]) for r in caplog.records]
    assert messages == [("WARNING", "disk"), ("INFO", "disk")]  # once per episode


def test_a_full_disk_keeps_the_old_table(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    replace_atomically(path, HEADER, [(1, "x")])
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EDQUOT, "Disk quota exceeded")))
    with pytest.raises(DiskFull):
        replace_atomically(path, HEADER, [(2, "y")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert read_table(path, HEADER) == [["1", "x"]] and not (tmp_path / "t.csv.tmp").exists()
    replace_atomically(path, HEADER, [(2, "y")])  # ends the episode


@pytest.mark.parametrize("block", [16, 4096])
def test_line_index_finds_every_line_scanned_or_appended(tmp_path, monkeypatch, block):
    monkeypatch.setattr(LineIndex, "BLOCK", block)
    rng = random.Random(7)
    path = tmp_path / "log.csv"
    log = AppendLog.open(path, HEADER)
    rows = [(n, "x" * rng.randint(0, 40)) for n in range(300)]
    for row in rows[:200]:
        log.append(row)
    index = LineIndex.scan(path)
    for row in rows[200:]:
        offset = log.append(row)
        index.appended(offset, log.size - offset)
    assert index.lines == 301 and index.size == log.size
    lines = path.read_bytes().split(b"\r\n")
    for number in range(301):
        offset = index.offset(log, number)
        assert log.read(offset, len(lines[number])) == lines[number]


def test_the_rpc_server_answers_a_full_disk_with_507():
    def full(args):
        raise DiskFull

    reply, status = answer("order", "trade", full, {})
    assert (status, reply["error"]["code"]) == (507, 507)
    assert reply["error"]["message"].startswith("insufficient storage: ")

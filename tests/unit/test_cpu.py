"""The bench's CPU accounting: /proc/<pid>/stat parsing and CPU time per request, without a broker."""
import os
import subprocess
import sys
import threading
import time

import pytest

from bench import cpu

# proc(5) layout: pid (comm) state ppid ... utime(14) stime(15) ...; a comm may hold spaces and ")".
STAT = "4242 (a ) b) S 1 4242 4242 0 -1 4194560 900 0 0 0 {utime} {stime} 0 0 20 0 3 0 100 0 0"


def test_cpu_seconds_adds_user_and_system_time_after_an_awkward_command_name():
    text = STAT.format(utime=3 * cpu.TICKS, stime=cpu.TICKS // 2)
    assert cpu.cpu_seconds(text) == pytest.approx(3.5)


def test_cpu_seconds_of_this_process_grows_with_work():
    before = cpu.snapshot({"me": os.getpid()})["me"].seconds
    sum(i * i for i in range(3_000_000))
    assert cpu.snapshot({"me": os.getpid()})["me"].seconds > before


def test_context_switches_of_this_process_count_every_thread():
    before = cpu.snapshot({"me": os.getpid()})["me"].switches
    waker = threading.Event()
    sleepers = [threading.Thread(target=waker.wait) for _ in range(3)]
    for sleeper in sleepers:
        sleeper.start()
    time.sleep(0.05)  # each sleeper blocks on the event: one voluntary switch each at least
    during = cpu.snapshot({"me": os.getpid()})["me"].switches
    waker.set()
    for sleeper in sleepers:
        sleeper.join()
    assert during >= before + 3


def test_context_switches_add_voluntary_and_involuntary_ones():
    status = "Name:\tpython3\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
    assert cpu.context_switches(status) == 127


def test_per_request_divides_each_process_cpu_and_switches_summed_over_the_runs_by_the_requests():
    run_1 = ({"frontend": cpu.Usage(1.0, 10), "catalog": cpu.Usage(2.0, 0), "gone": cpu.Usage(1.0, 0)},
             {"frontend": cpu.Usage(1.5, 510), "catalog": cpu.Usage(2.1, 100)})
    run_2 = ({"frontend": cpu.Usage(2.0, 600), "catalog": cpu.Usage(3.0, 200)},
             {"frontend": cpu.Usage(2.5, 1100), "catalog": cpu.Usage(3.1, 300)})
    ms, switches = cpu.per_request([run_1, run_2], 200)
    assert ms == pytest.approx({"frontend": 5.0, "catalog": 1.0})
    assert switches == pytest.approx({"frontend": 5.0, "catalog": 1.0})
    assert cpu.per_request([run_1], 0) == ({}, {})


def test_snapshot_skips_processes_that_ended(tmp_path):
    (tmp_path / "7" / "task" / "7").mkdir(parents=True)
    (tmp_path / "7" / "stat").write_text(STAT.format(utime=cpu.TICKS, stime=0))
    (tmp_path / "7" / "task" / "7" / "status").write_text("voluntary_ctxt_switches:\t3\n")
    usage = cpu.snapshot({"alive": 7, "ended": 8}, proc=tmp_path)
    assert usage.keys() == {"alive", cpu.LOAD} and usage["alive"] == cpu.Usage(1.0, 3)


def test_pids_named_finds_processes_by_command_name(tmp_path):
    for pid, comm in ((10, "beam.smp"), (11, "python3"), (12, "beam.smp")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    assert sorted(cpu.pids_named("beam.smp", proc=tmp_path)) == [10, 12]


def test_profile_shares_count_threads_leaves_and_own_frames_once_per_sample():
    from bench.profile import shares
    raw = ("thread (1): order_0;run (broker/server.py:1);parse (json/decoder.py:2);run (broker/server.py:1) 3\n"
           "thread (2): catalog;poll (pika/select.py:9) 1\n")
    total, threads, leaves, own = shares(raw, top=5)
    assert total == 4 and threads == {"order_0": 3, "catalog": 1}
    assert leaves == [("run (broker/server.py:1)", 3), ("poll (pika/select.py:9)", 1)]
    assert own == {"run (broker/server.py)": 3}


def test_profile_shares_name_the_trade_path_by_function_alone():
    from bench.profile import shares
    raw = "thread (1): order_0;ReplicatedLog._wait (order_worker/replication.py:313);wait (threading.py:1) 2\n"
    assert shares(raw, top=5)[3] == {"ReplicatedLog._wait": 2}


def test_the_load_is_the_cpu_of_children_that_ended(tmp_path):
    before = cpu.snapshot({})[cpu.LOAD]
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    after = cpu.snapshot({})[cpu.LOAD]
    assert after.seconds > before.seconds and after.switches > before.switches

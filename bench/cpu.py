"""CPU time per request of each process, from ``/proc/<pid>/stat`` read before and after a load."""
import os
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_text):
    """utime + stime in seconds from the text of a ``/proc/<pid>/stat`` file."""
    # The command name (field 2) is in parentheses and may hold spaces or ")": split after the last ")".
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / TICKS


def pids_named(command, proc=PROC):
    """Pids of the processes whose command name (``/proc/<pid>/comm``) is ``command``."""
    found = []
    for entry in proc.iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == command:
                found.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return found


LOAD = "load"  # the load generators: wrk, or the RPC floor's client processes


def snapshot(pids, proc=PROC):
    """``{name: CPU seconds}`` of each ``{name: pid}`` that still runs, and as ``load`` that of this
    process's children that have ended (the load generators: each load's wrk or client processes
    ends before the next snapshot, while the services still run)."""
    times = os.times()
    seconds = {LOAD: times.children_user + times.children_system}
    for name, pid in pids.items():
        try:
            seconds[name] = cpu_seconds((proc / str(pid) / "stat").read_text())
        except OSError:
            continue
    return seconds


def per_request_ms(before, after, requests):
    """``{name: CPU ms per request}`` between two snapshots, for processes in both."""
    if not requests:
        return {}
    return {name: (after[name] - before[name]) * 1000 / requests for name in after if name in before}


def echo_pids(server):
    """The RPC floor's echo server process and RabbitMQ's Erlang VM."""
    return {"echo server": server.pid, **rabbitmq_pid()}


def rabbitmq_pid():
    """``{"rabbitmq": pid}`` when one RabbitMQ runs on this machine, else nothing."""
    beams = pids_named("beam.smp")
    return {"rabbitmq": beams[0]} if len(beams) == 1 else {}  # more than one VM: we cannot tell which


def stack_pids(stack):
    """The stack's processes and RabbitMQ's Erlang VM (``rabbitmq``, when it runs on this machine)."""
    return {**{name: process.pid for name, process in stack.processes.items()}, **rabbitmq_pid()}

"""CPU time and context switches per request of each process, from ``/proc`` read before and after a load."""
import contextlib
import os
import resource
from pathlib import Path
from typing import NamedTuple

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


def context_switches(status_text):
    """Voluntary + involuntary context switches from the text of a ``/proc/<pid>/task/<tid>/status`` file."""
    return sum(int(line.split()[1]) for line in status_text.splitlines()
               if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))


def _switches(tasks):
    """The context switches of a process's threads (``/proc/<pid>/task``), of those still running: a
    thread that ends takes its count with it, which the services' long-lived threads do not."""
    total = 0
    for task in tasks.iterdir():
        with contextlib.suppress(OSError):  # the thread ended while we looked
            total += context_switches((task / "status").read_text())
    return total


LOAD = "load"  # the load generators: wrk, or the RPC floor's client processes


class Usage(NamedTuple):
    """What a process has used so far: CPU seconds (utime + stime) and context switches."""
    seconds: float
    switches: int


def snapshot(pids, proc=PROC):
    """``{name: Usage}`` of each ``{name: pid}`` that still runs, and as ``load`` that of this
    process's children that have ended (the load generators: each load's wrk or client processes
    ends before the next snapshot, while the services still run)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = {LOAD: Usage(children.ru_utime + children.ru_stime, children.ru_nvcsw + children.ru_nivcsw)}
    for name, pid in pids.items():
        try:
            process = proc / str(pid)
            usage[name] = Usage(cpu_seconds((process / "stat").read_text()), _switches(process / "task"))
        except OSError:
            continue
    return usage


def per_request(snapshots, requests):
    """``({name: CPU ms}, {name: context switches})`` per request, over every ``(before, after)`` pair
    of ``snapshots``, for the processes in all of them."""
    if not requests or not snapshots:
        return {}, {}
    names = [name for name in snapshots[0][1] if all(name in b and name in a for b, a in snapshots)]
    ms = {name: sum(after[name].seconds - before[name].seconds for before, after in snapshots) * 1000 / requests
          for name in names}
    switches = {name: sum(after[name].switches - before[name].switches for before, after in snapshots) / requests
                for name in names}
    return ms, switches


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

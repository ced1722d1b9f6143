"""RabbitMQ's own work per trade, by the Erlang process doing it: ``python -m bench.broker [--connections C]``.

Starts the replicated stack (three order replicas, two catalog replicas), drives wrk trades and asks
the local broker (``rabbitmqctl eval``) for every process's reductions over a window in the middle of
the run (``recon:proc_window``; recon ships with RabbitMQ). A connection's reader, channels, writer
and heartbeats count under its name (``frontend-batch``, ``order-1.stream``…; the leader's as
``order-1 (leader)``), a queue's process under its name (``order``, the frontend's exclusive event
queue as ``amq.gen-…``), the rest under their module (the stream's writer is ``osiris_writer``).
Reductions are Erlang's unit of work: their shares tell where the broker's CPU goes, and the
broker's CPU per trade over the same window (``/proc``) gives them a scale.
"""
import argparse
import collections
import subprocess
import threading
import time

from bench import cpu
from bench.loads import wrk
from harness.stack import Stack

# Prints ``reductions<TAB>kind<TAB>name`` for each process that worked during the window (~w milliseconds).
PROCESSES = r"""
Describe = fun(P) ->
    D = case erlang:process_info(P, dictionary) of {dictionary, Dict} -> Dict; _ -> [] end,
    case proplists:get_value(process_name, D) of
        {rabbit_channel, {C, _}} -> {connection, C};
        {rabbit_reader, C} -> {connection, C};
        {rabbit_writer, {C, _}} -> {connection, C};
        {heartbeat_sender, C} -> {connection, C};
        {heartbeat_receiver, C} -> {connection, C};
        {rabbit_amqqueue_process, {resource, _, queue, Q}} -> {queue, Q};
        _ -> try proc_lib:translate_initial_call(P) of
                 {proc_lib, _, _} -> {other, <<"other">>};
                 {M, _, _} -> {other, atom_to_binary(M)}
             catch _:_ -> {other, <<"other">>}
             end
    end
end,
[io:format("~b\t~s\t~ts~n", [R, K, N])
 || {P, R, _} <- recon:proc_window(reductions, 1000000, ~w), R > 0, {K, N} <- [Describe(P)]],
ok.
"""
NAMED = " - "  # a reader's name: "127.0.0.1:38398 -> 127.0.0.1:5672 - <namespace>.<connection name>"


def parse(text):
    """``[(reductions, kind, name)]`` from the lines PROCESSES prints."""
    rows = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0].isdigit():
            rows.append((int(fields[0]), fields[1], fields[2]))
    return rows


def processes(seconds):
    """``[(reductions, kind, name)]`` of the local broker's processes over the next ``seconds``."""
    command = ["rabbitmqctl", "eval", PROCESSES.replace("~w", str(int(seconds * 1000)), 1)]
    return parse(subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout)


def by_role(rows, namespace, leader):
    """Reductions by role: a connection's processes under its name (without ``namespace.``; ``leader``'s
    connections marked), a queue's under its name, the rest under their module."""
    names = {}  # "ip:port -> ip:port" -> connection name, from the readers
    for _, kind, name in rows:
        if kind == "connection" and NAMED in name:
            peer, _, named = name.partition(NAMED)
            names[peer] = named.removeprefix(f"{namespace}.")
    roles: collections.Counter[str] = collections.Counter()
    for reductions, kind, name in rows:
        if kind == "connection":
            role = names.get(name.partition(NAMED)[0], "other connections")
            if role.split(".")[0] == leader:
                role = role.replace(leader, f"{leader} (leader)", 1)
        else:
            role = name.removeprefix(f"{namespace}.")
        roles[role] += reductions
    return roles


def measure(stack, broker, connections, seconds):
    """``(trades/s, broker CPU ms a trade, {role: reductions a trade})`` over ``seconds`` in the
    middle of a wrk run of ``seconds + 2``; ``broker`` is ``{"rabbitmq": pid}`` (``cpu.rabbitmq_pid``)."""
    result = {}
    load = threading.Thread(target=lambda: result.update(wrk(stack.url, "trade", connections, seconds + 2)))
    load.start()
    time.sleep(1)
    before = cpu.snapshot(broker)["rabbitmq"].seconds
    rows = processes(seconds)
    used = cpu.snapshot(broker)["rabbitmq"].seconds - before
    load.join()
    trades = result["trade"]["rate"] * seconds
    roles = by_role(rows, stack.settings.namespace, stack.leader())
    return result["trade"]["rate"], used * 1000 / trades, {role: n / trades for role, n in roles.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=14, help="roles shown per load (default 14)")
    args = parser.parse_args(argv)
    if not (broker := cpu.rabbitmq_pid()):
        raise SystemExit("bench.broker needs the one RabbitMQ (beam.smp) running on this machine")
    with Stack(replicas=3, catalog_replicas=2) as stack:
        wrk(stack.url, "trade", 8, 2)  # warm-up
        for connections in args.connections:
            rate, ms, roles = measure(stack, broker, connections, args.seconds)
            total = sum(roles.values())
            print(f"\ntrades x {connections}: {rate:.0f}/s; RabbitMQ {ms:.2f} ms of CPU and {total:,.0f} "
                  f"reductions a trade")
            for role, n in sorted(roles.items(), key=lambda item: -item[1])[:args.top]:
                print(f"  {n:8,.0f}  {n / total:6.1%}  {role}")


if __name__ == "__main__":
    main()

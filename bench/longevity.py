"""Long-run figures: ``python -m bench.longevity [--trades N] [--soak [--soak-trades N]]``.

Writes the order log ``--trades`` trades leave behind, in its own format, into the data directory
of an order worker and of a catalog worker (every replica keeps the whole log, derived from the
order stream), starts the real workers on them (in a fresh namespace: an empty stream, read from
its start, as a replica without a saved stream position does) and reports each one's time to
first answer and memory, and the latency of ``GET /orders/<n>`` against a one-order log.
``--soak`` then pushes real trades through a fresh stack with wrk and reports the workers'
memory before and after.
"""
import argparse
import csv
import dataclasses
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.loads import wrk
from broker import RpcClient, RpcError
from client.session import Session
from harness.stack import ROOT, Stack, free_port
from ledger.orders import COLUMNS as ORDER_COLUMNS
from ledger.orders import Order, checksummed
from ledger.stocks import DEFAULT_PRICES
from runtime.settings import Settings

NAMES = list(DEFAULT_PRICES)


def trade(n):
    """Trade number ``n`` (from 0): 1 share of each stock in turn, bought then sold, so quantities stay put."""
    name, order_type = NAMES[(n // 2) % len(NAMES)], ("buy", "sell")[n % 2]
    return name, order_type, f"{n:032x}"


def write_log(path, trades):
    """The order log after ``trades`` trades, as the replicas leave it."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ORDER_COLUMNS)
        writer.writerows(checksummed(Order(n, *trade(n)[:2], 1, trade(n)[2], n + 1)) for n in range(trades))


def memory_mb(pid):
    """Resident and peak resident memory of a process, in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(status[field].split()[0]) / 1024 for key, field in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))}


def start(module, env, log_dir):
    with open(log_dir / f"{module}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log, stderr=log)


def seconds_to_answer(rpc, process, service, method, args, timeout=120):
    """Seconds from now until ``service`` answers ``method`` (any reply, error or not)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert process.poll() is None, f"{service} exited with {process.returncode}"
        try:
            rpc.call(service, method, args, timeout=0.5)
            return time.monotonic() - started
        except RpcError as exc:
            if exc.code < 500:
                return time.monotonic() - started
            time.sleep(0.02)  # a worker still starting: its queue does not exist yet
    raise TimeoutError(f"{service} did not answer within {timeout} s")


def wait_for_http(url, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the frontend exited"
        try:
            if Session(url, timeout=1).get("/orders/0")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the frontend did not answer")


def lookup_ms(url, numbers, repeats):
    """Median milliseconds of ``GET /orders/<n>`` for each n."""
    session, figures = Session(url), {}
    for number in numbers:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            status = session.get(f"/orders/{number}")[0]
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, (number, status)
        figures[number] = statistics.median(times)
    session.close()
    return figures


def measure(trades, settings, repeats):
    """Start the workers on the files of ``trades`` trades; return their start-up, memory and lookup figures."""
    with tempfile.TemporaryDirectory(prefix="bazaar-longevity-") as tmp:
        log_dir = Path(tmp)
        data_dirs = {service: log_dir / service for service in ("order", "catalog")}
        started = time.monotonic()
        for data_dir in data_dirs.values():
            data_dir.mkdir()
        write_log(data_dirs["order"] / "order_log.csv", trades)
        shutil.copyfile(data_dirs["order"] / "order_log.csv", data_dirs["catalog"] / "order_log.csv")
        written = time.monotonic() - started
        port = free_port()
        env = {**os.environ, "BAZAAR_NAMESPACE": settings.namespace, "FRONTEND_PORT": str(port),
               "LOG_LEVEL": "WARNING"}
        rpc, processes, figures = RpcClient(settings, "longevity"), {}, {"trades": trades, "write_s": written}
        try:
            for service, module, method, args in (("catalog", "catalog_worker", "lookup", {"name": "GameStart"}),
                                                  ("order", "order_worker", "query", {"number": 0})):
                processes[service] = start(module, {**env, "DATA_DIR": str(data_dirs[service])}, log_dir)
                figures[f"{service}_start_s"] = seconds_to_answer(rpc, processes[service], service, method, args)
            processes["frontend"] = start("frontend", env, log_dir)
            url = f"http://127.0.0.1:{port}"
            wait_for_http(url, processes["frontend"])
            numbers = sorted({0, trades // 2, trades - 1})
            figures["get_order_ms"] = lookup_ms(url, numbers, repeats)
            for service in ("catalog", "order"):
                figures.update({f"{service}_{key}": value for key, value in memory_mb(processes[service].pid).items()})
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=15)
            rpc.stop()
    return figures


def soak(trades, settings):
    """Push ``trades`` real trades through a fresh stack with wrk; the workers' memory before and after."""
    with Stack(env={"BAZAAR_NAMESPACE": settings.namespace}) as stack:
        url = stack.url
        catalog, order = stack.processes["catalog"].pid, stack.processes["order"].pid
        before = {"catalog": memory_mb(catalog), "order": memory_mb(order)}
        done, started = 0, time.monotonic()
        while done < trades:
            result = wrk(url, "trade", 8, 10)["trade"]
            done += result["count"]
            assert not result["errors"], result["errors"]
        after = {"catalog": memory_mb(catalog), "order": memory_mb(order)}
        orders = Session(url).get(f"/orders/{done - 1}")[0]
    return {"trades": done, "seconds": time.monotonic() - started, "before": before, "after": after,
            "last_order_status": orders}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.longevity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    logging.getLogger("broker").setLevel(logging.ERROR)  # "not started yet" is expected while workers start
    parser.add_argument("--trades", type=int, default=5_000_000, help="trades' worth of files (default 5,000,000)")
    parser.add_argument("--repeats", type=int, default=200, help="GET /orders/<n> requests per n (default 200)")
    parser.add_argument("--soak", action="store_true", help="also push real trades through a fresh stack")
    parser.add_argument("--soak-trades", type=int, default=100_000, help="trades of the soak (default 100,000)")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(Settings.from_env(), namespace=f"bench-{uuid.uuid4().hex[:8]}")
    empty, full = measure(1, settings, args.repeats), measure(args.trades, settings, args.repeats)
    print(f"files of {args.trades:,} trades written in {full['write_s']:.1f} s")
    print("| worker | start to first answer s | RSS MB | peak RSS MB | (one-order log: s, MB) |\n|---|--:|--:|--:|--:|")
    for service in ("catalog", "order"):
        print(f"| {service} | {full[f'{service}_start_s']:.2f} | {full[f'{service}_rss_mb']:.0f} | "
              f"{full[f'{service}_peak_mb']:.0f} | {empty[f'{service}_start_s']:.2f}, "
              f"{empty[f'{service}_rss_mb']:.0f} |")
    base = empty["get_order_ms"][0]
    for number, ms in full["get_order_ms"].items():
        print(f"GET /orders/{number}: p50 {ms:.2f} ms ({ms / base:.2f}x the one-order log's {base:.2f} ms)")
    if args.soak:
        result = soak(args.soak_trades, settings)
        print(f"soak: {result['trades']:,} trades in {result['seconds']:.0f} s; "
              + "; ".join(f"{service} RSS {result['before'][service]['rss_mb']:.0f} -> "
                          f"{result['after'][service]['rss_mb']:.0f} MB" for service in ("catalog", "order")))


if __name__ == "__main__":
    main()

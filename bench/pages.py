"""Lookups while web pages are open: ``python -m bench.pages [--pages 50] [--lookups 2000]``.

Each page is a thread doing what frontend/static/page.js does: ``GET /stocks`` with the ETag it
holds, every 500 ms. The lookups run sequentially on one keep-alive connection, first with no page
open, then with ``--pages`` open; the figures are their latency percentiles.
"""
import argparse
import threading
import time

from client.session import Session
from client.stats import percentile
from harness.stack import Stack

POLL_SECONDS = 0.5


def poll_like_a_page(url, stopping):
    session, etag = Session(url, timeout=10), None
    while not stopping.wait(POLL_SECONDS):
        _, _, headers = session.request("GET", "/stocks", headers={"If-None-Match": etag} if etag else {})
        etag = headers.get("ETag", etag)
    session.close()


def lookup_latencies(url, count):
    """Seconds each of ``count`` lookups took, on one new keep-alive connection."""
    session, latencies = Session(url, timeout=10), []
    for _ in range(count):
        started = time.perf_counter()
        assert session.get("/stocks/GameStart")[0] == 200
        latencies.append(time.perf_counter() - started)
    session.close()
    return latencies


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    with Stack() as stack:
        url = stack.url
        lookup_latencies(url, 200)  # warm-up: connections, cache
        for pages in (0, args.pages):
            stopping = threading.Event()
            pollers = [threading.Thread(target=poll_like_a_page, args=(url, stopping)) for _ in range(pages)]
            for poller in pollers:
                poller.start()
            time.sleep(2 * POLL_SECONDS if pages else 0)  # every page has polled once
            latencies = sorted(lookup_latencies(url, args.lookups))
            stopping.set()
            for poller in pollers:
                poller.join()
            print(f"{pages:3d} pages open: lookup p50 {percentile(latencies, 50) * 1000:.2f} ms, "
                  f"p99 {percentile(latencies, 99) * 1000:.2f} ms ({args.lookups} lookups)")


if __name__ == "__main__":
    main()

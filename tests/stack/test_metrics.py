"""Prometheus metrics: the frontend's on /metrics and each worker's on its METRICS_PORT move with traffic."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pika
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT

BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}


def scrape(url):
    """Every sample at ``url`` as ``{(name, frozenset of label items): value}``."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def worker_metrics(stack, service):
    return scrape(f"http://127.0.0.1:{stack.metrics_ports[service]}/metrics")


def test_frontend_counts_requests_and_rpc_calls(stack, api):
    lookups = dict(route="/stocks/<name>", method="GET")
    before = scrape(stack.url + "/metrics")
    api.get("/stocks/GameStart")
    api.get("/stocks/NoSuchCo")
    api.get("/no/such/path")
    after = scrape(stack.url + "/metrics")
    for status in ("200", "404"):
        name = "bazaar_http_requests_total"
        assert value(after, name, **lookups, status=status) == value(before, name, **lookups, status=status) + 1
    assert value(after, "bazaar_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    name = "bazaar_http_request_duration_seconds_count"
    assert value(after, name, **lookups) == value(before, name, **lookups) + 2
    name = "bazaar_rpc_call_duration_seconds_count"
    assert value(after, name, service="catalog", method="lookup") == \
        value(before, name, service="catalog", method="lookup") + 2
    assert value(after, "bazaar_rpc_calls_in_flight", service="catalog") == 0


def test_frontend_counts_cache_hits_and_misses(stack, api):
    deadline = time.monotonic() + 5
    while api.get("/stocks/FishCo")[2]["X-Cache"] != "hit":  # the cache is on once events flow
        assert time.monotonic() < deadline, "the frontend's cache never answered"
    before = scrape(stack.url + "/metrics")
    api.get("/stocks/FishCo")
    api.get("/stocks/BoarCo")
    after = scrape(stack.url + "/metrics")
    hits, misses = (value(after, name) - value(before, name)
                    for name in ("bazaar_cache_hits_total", "bazaar_cache_misses_total"))
    assert (hits, misses) == (1, 1)


def test_workers_count_handled_messages_and_fsyncs(stack, api):
    assert api.post("/orders", BUY)[0] == 200
    assert api.post("/orders", {**BUY, "quantity": 1000})[0] == 409
    assert api.get("/stocks/GameStart")[0] == 200  # waits for the catalog replica to apply the trade
    catalog, order = worker_metrics(stack, "catalog"), worker_metrics(stack, "order")
    handled = "bazaar_rpc_messages_handled_total"
    assert value(order, handled, service="order", method="trade", status="200") == 1
    assert value(order, handled, service="order", method="trade", status="409") == 1
    assert value(order, "bazaar_rpc_handling_duration_seconds_count", service="order", method="trade") == 2
    assert value(catalog, handled, service="catalog", method="lookup", status="200") >= 1
    # The order log's fsyncs, on the leader and on the catalog replica, which reads the same stream.
    assert value(order, "bazaar_storage_fsync_duration_seconds_count") >= 1  # the takeover marker may add one
    assert value(catalog, "bazaar_storage_fsync_duration_seconds_count") >= 1
    # No worker calls another: the stream decides a trade.
    assert not any(name == "bazaar_rpc_call_duration_seconds_count" and ("service", "catalog") in labels
                   for name, labels in order)


def test_worker_counts_dead_lettered_requests(stack, settings):
    with pika.BlockingConnection(pika.URLParameters(settings.amqp_url)) as connection:
        connection.channel().basic_publish("", settings.queue("catalog"), b"not json",
                                           pika.BasicProperties(type="lookup"))
    name, labels = "bazaar_rpc_dead_lettered_total", dict(service="catalog", reason="malformed")
    stack.admin.get(settings.dead_letter_queue)
    assert value(worker_metrics(stack, "catalog"), name, **labels) == 1


def test_metrics_port_in_use_stops_the_worker_with_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "DATA_DIR": str(tmp_path), "METRICS_PORT": str(taken.getsockname()[1])}
        result = subprocess.run([sys.executable, "-m", "catalog_worker"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot serve metrics on 127.0.0.1:" in result.stderr and "(METRICS_PORT)" in result.stderr

"""Requests waiting for a handler thread: counted by a gauge, not logged one by one."""
import logging
import socket
import threading
import time

from prometheus_client import REGISTRY

from frontend.server import HttpServer
from runtime.logs import setup_logging
from runtime.settings import Settings


def test_requests_waiting_for_a_thread_are_counted_and_not_logged_each(capsys, root_logger):
    setup_logging("test")
    release = threading.Event()

    def slow(environ, start_response):
        release.wait(5)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = HttpServer(slow, Settings(frontend_port=0, frontend_threads=1))
    server.start()
    clients = []
    try:
        address = (server._server.effective_host, server._server.effective_port)
        for _ in range(3):  # one takes the only thread, two wait for it
            clients.append(socket.create_connection(address, timeout=5))
            clients[-1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while REGISTRY.get_sample_value("bazaar_http_requests_queued") != 2:
            assert time.monotonic() < deadline, "the queued requests were not counted"
            time.sleep(0.01)
        release.set()
        assert all(client.recv(1024).startswith(b"HTTP/1.1 200") for client in clients)
        assert REGISTRY.get_sample_value("bazaar_http_requests_queued") == 0
    finally:
        release.set()
        for client in clients:
            client.close()
        server.stop()
    assert "Task queue depth" not in capsys.readouterr().err
    assert not logging.getLogger("waitress.queue").isEnabledFor(logging.WARNING)

"""The epoll loop's bookkeeping: what it asks again, what it registers, and when."""
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel

from frontend.eventloop import ChannelMap, EventLoop


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello"]


@pytest.fixture
def server():
    server = waitress.create_server(hello, map=ChannelMap(), host="127.0.0.1", port=0, threads=2,
                                    channel_timeout=1, cleanup_interval=1)
    yield server
    server.task_dispatcher.shutdown()
    server.close()


@pytest.fixture
def loop(server):
    loop = EventLoop(server)
    yield loop
    loop.close()


def connect(server, data=b""):
    sock = socket.create_connection((server.effective_host, server.effective_port), timeout=5)
    sock.sendall(data)
    sock.setblocking(False)
    return sock


def run_until(loop, done, seconds=5):
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        loop.poll(0.05)


def received(sock):
    try:
        return sock.recv(4096, socket.MSG_PEEK)
    except BlockingIOError:
        return None


def test_changed_descriptors_are_noted_once():
    channels = ChannelMap()
    channels[3], channels[4] = "a", "b"
    del channels[3]
    assert channels.take_changed() == {3, 4}
    assert channels.take_changed() == set()


def test_a_request_is_answered(server, loop):
    client = connect(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    run_until(loop, lambda: received(client) and received(client).endswith(b"hello"))
    client.close()


def test_quiet_connections_are_not_asked_again(server, loop, monkeypatch):
    held = [connect(server, b"GET /hal") for _ in range(50)]
    run_until(loop, lambda: len(server.active_channels) == 50)
    for _ in range(3):
        loop.poll(0)
    asked = []
    monkeypatch.setattr(HTTPChannel, "readable", lambda channel: asked.append(channel) or True)
    client = connect(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    run_until(loop, lambda: received(client))
    assert len(set(asked)) == 1  # the new connection's channel only
    for sock in [*held, client]:
        sock.close()


def test_connections_whose_requests_are_in_hand_are_asked_again_only_once_their_thread_answers(monkeypatch):
    gate = threading.Event()

    def held(environ, start_response):
        gate.wait(5)
        return hello(environ, start_response)

    server = waitress.create_server(held, map=ChannelMap(), host="127.0.0.1", port=0, threads=4)
    loop = EventLoop(server)
    clients = [connect(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(4)]
    run_until(loop, lambda: server.task_dispatcher.active_count == 4)
    for _ in range(3):
        loop.poll(0)
    asked = []
    real_readable = HTTPChannel.readable
    monkeypatch.setattr(HTTPChannel, "readable", lambda channel: asked.append(channel) or real_readable(channel))
    for _ in range(5):
        loop.poll(0)
    assert asked == []  # four requests in hand, and no pass asked their connections
    gate.set()
    run_until(loop, lambda: all(received(client) and received(client).endswith(b"hello") for client in clients))
    # The threads wrote the answers themselves: the loop hears of them afterwards, one wake-up or more.
    run_until(loop, lambda: len(set(asked)) == 4)  # each asked again once its thread had answered
    for client in clients:
        client.close()
    server.task_dispatcher.shutdown()
    server.close()
    loop.close()


def test_silent_connections_are_closed_after_the_channel_timeout(server, loop):
    client = connect(server, b"GET /hal")
    run_until(loop, lambda: received(client) == b"")


class Pipe(wasyncore.dispatcher):
    """A dispatcher on one end of a socket pair that records what it read."""

    def __init__(self, channels):
        self.peer, sock = socket.socketpair()
        super().__init__(sock, map=channels)
        self.data = b""

    def handle_read(self):
        self.data += self.recv(100)

    def writable(self):
        return False


def test_a_descriptor_number_reused_before_the_next_pass_is_registered_again():
    fake_server = SimpleNamespace(_map=ChannelMap(), next_channel_cleanup=0)
    loop = EventLoop(fake_server)
    first = Pipe(fake_server._map)
    loop.poll(0)
    fd = first._fileno
    first.close()
    first.peer.close()
    second = Pipe(fake_server._map)
    assert second._fileno == fd  # the lowest free number
    second.peer.sendall(b"x")
    loop.poll(0)
    assert second.data == b"x"
    loop.close()


def test_a_dispatcher_with_a_closed_socket_is_closed_not_fatal():
    fake_server = SimpleNamespace(_map=ChannelMap(), next_channel_cleanup=0)
    loop = EventLoop(fake_server)
    broken = Pipe(fake_server._map)
    broken.socket.close()
    loop.poll(0)
    assert fake_server._map == {}
    loop.close()


def test_a_connection_is_read_again_after_pipelined_requests(server, loop):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    client = connect(server, 3 * request)
    run_until(loop, lambda: received(client) and received(client).count(b"hello") == 3)
    client.recv(1000)
    client.sendall(request)
    run_until(loop, lambda: received(client) and received(client).endswith(b"hello"))
    client.close()

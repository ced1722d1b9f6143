"""An in-memory transport, for tests whose subject is not RabbitMQ: a call goes straight to the
service's handlers (through the RPC server's own ``answer``), and events published to it to the listeners."""
import json
from collections.abc import Callable
from typing import Any

from broker.messages import RpcError, encode, parse_reply
from broker.server import answer
from runtime.lifecycle import Component


class MemoryEvents(Component):
    """An event source like Subscriber, fed by MemoryTransport; connected from ``start`` to ``stop``."""

    name = "memory-events"

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Any] = []

    def start(self, on_failure: Callable[[Component], None] | None = None) -> None:
        super().start(on_failure)
        for listener in self.listeners:
            listener.on_connected()

    def stop(self) -> None:
        for listener in self.listeners:
            listener.on_disconnected()

    def publish(self, kind: str, body: bytes) -> None:
        for listener in self.listeners:
            listener.on_event(kind, json.loads(body))


class MemoryTransport(Component):
    """Stands in for an RpcClient: ``call`` runs the served handler and returns its reply as JSON would."""

    name = "memory-transport"

    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, dict] = {}
        self.events = MemoryEvents()

    def serve(self, service: str, handlers: dict) -> None:
        self.services[service] = {**handlers, "ping": lambda args: {"service": service}}

    def call(self, service: str, method: str, args: dict, timeout: float | None = None) -> Any:
        if service not in self.services:
            raise RpcError(503, f"the {service} service is unavailable")
        handler = self.services[service].get(method)
        if handler is None:
            raise RpcError(400, f"malformed request: unknown method {method!r}")
        reply, _status = answer(service, method, handler, json.loads(encode(args)))
        return parse_reply(encode(reply))

"""The wire format: JSON bodies, legible AMQP properties, and the reply envelope."""
import contextvars
import itertools
import json
import time
import uuid
from collections.abc import Container
from typing import Any, NamedTuple

import pika

from broker import tracing
from runtime.logs import request_id

JSON = "application/json"
# When the caller of the request being handled stops waiting (epoch seconds; None outside requests).
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def deadline_left(default: float) -> float:
    """Seconds until the deadline of the request being handled, or ``default`` outside one."""
    ends = deadline.get()
    return default if ends is None else max(0.0, ends - time.time())


# Ids made here (request, correlation and message ids): random per process, then counted, since
# uuid4 costs a system call each time; several per trade showed in py-spy.
_PROCESS_ID, _COUNTER = uuid.uuid4().hex[:16], itertools.count()


def unique_id() -> str:
    """An id no other process makes: 32 hex digits."""
    return f"{_PROCESS_ID}{next(_COUNTER):016x}"


class RpcError(Exception):
    """An error reply: ``code`` is the HTTP status the frontend answers with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class Publication(NamedTuple):
    """A message to publish to an exchange, such as an event."""
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties


class BadMessage(Exception):
    """A delivery that is not a well-formed RPC request."""


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def properties(app_id: str, method: str, **extra: Any) -> pika.BasicProperties:
    """AMQP properties that make a message legible in the management UI, with the trace context."""
    return pika.BasicProperties(
        content_type=JSON, app_id=app_id, type=method, timestamp=int(time.time()),
        headers=tracing.inject({"request_id": request_id.get()}), **extra)


def parse_request(props: pika.BasicProperties, body: bytes, methods: Container[str]) -> tuple[str, dict]:
    """Return ``(method, args)`` of a request, or raise BadMessage saying what is wrong."""
    if not props.reply_to:
        raise BadMessage("no reply_to")
    if props.type not in methods:
        raise BadMessage(f"unknown method {props.type!r}")
    try:
        args = json.loads(body)
    except ValueError as exc:
        raise BadMessage(f"body is not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise BadMessage("body is not a JSON object")
    return props.type, args


def parse_reply(body: bytes | dict) -> Any:
    """Return the ``data`` of a reply envelope (its JSON, or one a batch reply held), or raise its
    error as RpcError."""
    try:
        reply = json.loads(body) if isinstance(body, bytes) else body
        if "error" in reply:
            raise RpcError(int(reply["error"]["code"]), str(reply["error"]["message"]))
        return reply["data"]
    except (ValueError, TypeError, KeyError):
        raise RpcError(502, "malformed reply from a worker") from None

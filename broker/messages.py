"""The wire format: JSON bodies, legible AMQP properties, and the reply envelope."""
import contextvars
import json
import time
from typing import NamedTuple

import pika

from broker.logs import request_id

JSON = "application/json"
# When the caller of the request being handled stops waiting (epoch seconds; None outside requests).
deadline = contextvars.ContextVar("deadline", default=None)


class RpcError(Exception):
    """An error reply: ``code`` is the HTTP status the frontend answers with."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message

    def envelope(self):
        return {"error": {"code": self.code, "message": self.message}}


class Publication(NamedTuple):
    """A message to publish to an exchange, such as an event."""
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties


class BadMessage(Exception):
    """A delivery that is not a well-formed RPC request."""


def encode(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def properties(app_id, method, **extra):
    """AMQP properties that make a message legible in the management UI."""
    return pika.BasicProperties(
        content_type=JSON, app_id=app_id, type=method, timestamp=int(time.time()),
        headers={"request_id": request_id.get()}, **extra)


def parse_request(props, body, methods):
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


def parse_reply(body):
    """Return the ``data`` of a reply envelope, or raise its error as RpcError."""
    try:
        reply = json.loads(body)
        if "error" in reply:
            raise RpcError(int(reply["error"]["code"]), str(reply["error"]["message"]))
        return reply["data"]
    except (ValueError, TypeError, KeyError):
        raise RpcError(502, "malformed reply from a worker") from None

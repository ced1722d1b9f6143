"""The shared RPC-over-RabbitMQ layer: settings, logging, message format, client and server."""
from broker.client import RpcClient
from broker.messages import RpcError
from broker.server import Reply, RpcServer
from broker.settings import Settings

__all__ = ["RpcClient", "Reply", "RpcError", "RpcServer", "Settings"]

"""The transport: RPC and events over RabbitMQ (connection, message format, client, server, events)."""
from broker.client import RpcClient
from broker.messages import RpcError
from broker.server import RpcServer

__all__ = ["RpcClient", "RpcError", "RpcServer"]

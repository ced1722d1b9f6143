"""The transport: RPC and events over RabbitMQ (connection, message format, client, server, events)."""
from broker.client import RpcClient
from broker.messages import RpcError
from broker.server import Reply, RpcServer

__all__ = ["Reply", "RpcClient", "RpcError", "RpcServer"]

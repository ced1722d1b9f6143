"""The trade request both workers accept, validated in one place."""
from broker.messages import RpcError

ORDER_TYPES = ("buy", "sell")
MAX_NAME = 100
MAX_QUANTITY = 1_000_000_000


def parse_trade(args: dict) -> tuple[str, str, str, int]:
    """Return ``(trade_id, name, type, quantity)``, or raise a 400 RpcError saying what is wrong."""
    name, order_type, quantity = args.get("name"), args.get("type"), args.get("quantity")
    trade_id = args.get("trade_id")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise RpcError(400, f"'name' must be a stock name (a string of 1 to {MAX_NAME} characters)")
    # bool is a subclass of int, and True is no quantity.
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        raise RpcError(400, f"'quantity' must be an integer from 1 to {MAX_QUANTITY:,}")
    if order_type not in ORDER_TYPES:
        raise RpcError(400, "'type' must be 'buy' or 'sell'")
    # One line: the order log finds its records by counting newlines (an HTTP header has none).
    if not isinstance(trade_id, str) or not 0 < len(trade_id) <= 200 or "\n" in trade_id or "\r" in trade_id:
        raise RpcError(400, "'trade_id' must be a string of 1 to 200 characters, without line breaks")
    return trade_id, name, order_type, quantity


def parse_int(args: dict, key: str) -> int:
    """An integer argument, or a 400 RpcError."""
    value = args.get(key)
    if type(value) is not int:
        raise RpcError(400, f"'{key}' must be an integer")
    return value

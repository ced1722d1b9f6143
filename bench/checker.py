"""Check a fault-injection run from its history and the files it left, and measure its unavailability.

``check(history, logs, stocks)`` takes the operations (bench.history), each replica's order_log.csv
(name -> bytes) and each replica's stock table (name -> Stocks, from its stream_position:
``saved_stocks``), order and catalog replicas alike, and returns the violations of each property, a
list of descriptions per property (all empty when the run was correct):

- acknowledged: every trade a client saw succeed is in every replica's log at its number, as placed,
- once: no trade id is in a log twice,
- gapless: each log's numbers are 0, 1, 2… in order,
- unique: no number was acknowledged for two trades,
- retries: every answer to one key carried the same number,
- refused: no trade refused with a 4xx is in a log,
- answers: every HTTP answer is one a well-formed trade may get under faults (CLEAR): a 500 is a bug,
- catalog: in each replica's stock table, each stock's quantity, volume and seq are the initial
  stock plus its log's trades,
- identical: the replicas' logs are byte-identical.
"""
import bisect
import csv
import io
from collections import Counter, defaultdict

from bench.history import TRANSPORT, acknowledged, outcome
from ledger.position import read_position
from ledger.stocks import DEFAULT_QUANTITY

PROPERTIES = ("acknowledged", "once", "gapless", "unique", "retries", "refused", "answers", "catalog", "identical")
# Done, refused for want of shares, unavailable, timed out, disk full: each tells the client what to do.
CLEAR = (200, 409, 503, 504, 507)


def parse_log(data):
    """The rows of an order log, as dicts keyed by its header."""
    return list(csv.DictReader(io.StringIO(data.decode(errors="replace"))))


def saved_stocks(data_dir):
    """A replica's saved stream position: the next transaction number there and the Stocks as of it."""
    _, next_number, _, stocks = read_position(data_dir / "stream_position")
    return next_number, stocks


def check(history, logs, stocks, initial=DEFAULT_QUANTITY):
    """The violations of each property, ``{property: [description, ...]}``."""
    found = {name: [] for name in PROPERTIES}
    rows = {replica: parse_log(data) for replica, data in logs.items()}
    for replica, log in rows.items():
        _check_log(found, replica, log, history)
        if replica in stocks:
            _check_catalog(found, replica, log, stocks[replica], initial)
    for replica in stocks.keys() - rows.keys():
        found["catalog"].append(f"{replica}: a stock table but no order log")
    _check_answers(found, history)
    if len(set(logs.values())) > 1:
        lines = {replica: len(log) for replica, log in rows.items()}
        found["identical"].append(f"the replicas' logs differ (lines: {lines})")
    return found


def _check_log(found, replica, log, history):
    numbers = [int(row["transaction_number"]) for row in log]
    if numbers != list(range(len(log))):
        first = next(i for i, n in enumerate([*numbers, None]) if n != i)
        found["gapless"].append(f"{replica}: line {first + 1} holds number {numbers[first]}, not {first}")
    for trade_id, count in Counter(row["trade_id"] for row in log).items():
        if count > 1:
            found["once"].append(f"{replica}: trade {trade_id} is logged {count} times")
    by_id = {row["trade_id"] for row in log}
    for operation in history:
        key, order = operation["key"], operation["order"]
        if outcome(operation) == "refused" and key in by_id:
            found["refused"].append(f"{replica}: trade {key}, refused with a 4xx, is logged")
        if (ack := acknowledged(operation)) is None:
            continue
        number = ack[1]
        row = log[number] if 0 <= number < len(log) else None
        placed = (key, order["name"], order["type"], order["quantity"])
        if row is None or (row["trade_id"], row["stock_name"], row["order_type"], int(row["trade_quantity"])) != placed:
            found["acknowledged"].append(f"{replica}: trade {key} was acknowledged as number {number}, "
                                         f"which holds {row and row['trade_id']}")


def _check_catalog(found, replica, log, stocks, initial):
    quantity, volume, seq = defaultdict(lambda: initial), Counter(), Counter()
    for row in log:
        name, traded = row["stock_name"], int(row["trade_quantity"])
        quantity[name] += traded if row["order_type"] == "sell" else -traded
        volume[name] += traded
        seq[name] = int(row["transaction_number"]) + 1
    for name in sorted(volume.keys() - {stock.name for stock in stocks}):
        found["catalog"].append(f"{replica}: {name} is traded in the log but not in the stock table")
    for stock in stocks:
        expected = (quantity[stock.name], volume[stock.name], seq[stock.name])
        if (stock.quantity, stock.trading_volume, stock.seq) != expected:
            found["catalog"].append(f"{replica}: {stock.name} has quantity, volume and seq "
                                    f"{stock[2:]} in the stock table, {expected} by the log")


def _check_answers(found, history):
    owners = defaultdict(set)
    for operation in history:
        unclear = [status for *_, status, _ in operation["attempts"] if status != TRANSPORT and status not in CLEAR]
        if unclear:
            found["answers"].append(f"trade {operation['key']} was answered {unclear}")
        numbers = {number for _, _, status, number in operation["attempts"] if status == 200}
        if len(numbers) > 1:
            found["retries"].append(f"trade {operation['key']} got the numbers {sorted(numbers)}")
        for number in numbers:
            owners[number].add(operation["key"])
    for number, keys in sorted(owners.items()):
        if len(keys) > 1:
            found["unique"].append(f"number {number} was acknowledged for {len(keys)} trades: {sorted(keys)}")


def successes(history):
    """When each acknowledged trade was first acknowledged, in order."""
    return sorted(ack[0] for ack in map(acknowledged, history) if ack is not None)


def longest_gap(times, start, end):
    """The longest time without a success (``times``, sorted) from ``start`` on, among the gaps that
    overlap [start, end]; infinite when none came after ``start``."""
    i = bisect.bisect_right(times, start)
    previous, longest = start, 0.0
    for t in times[i:]:
        longest = max(longest, t - previous)
        if t >= end:
            return longest
        previous = t
    return float("inf")


def unavailability(history, episodes):
    """Per fault type: how many were injected and the longest unavailability around one.

    An episode is ``{"fault", "start", "end", "inherent"}``, and ``caught_up_s`` for a replica's fault
    (None: never), whose longest is reported too. For a fault that takes the service away
    whatever the design (``inherent``: the broker stops) it is the time from its end to the next
    success; for any other, the longest gap between successes during it, counted from its start.
    """
    times, summary = successes(history), {}
    for episode in episodes:
        if episode["inherent"]:
            after = bisect.bisect_right(times, episode["end"])
            gap = times[after] - episode["end"] if after < len(times) else float("inf")
        else:
            gap = longest_gap(times, episode["start"], episode["end"])
        episode["gap_s"] = gap
        kind = summary.setdefault(episode["fault"], {"injected": 0, "longest_gap_s": 0.0})
        kind["injected"] += 1
        kind["longest_gap_s"] = max(kind["longest_gap_s"], gap)
        if "caught_up_s" in episode:  # a replica's fault: how long its log took to catch up after it
            caught_up = float("inf") if episode["caught_up_s"] is None else episode["caught_up_s"]
            kind["longest_catch_up_s"] = max(kind.get("longest_catch_up_s", 0.0), caught_up)
    return summary

"""bench.broker's reading of RabbitMQ's processes: parsing what its Erlang prints, grouping it by role."""
from bench.broker import by_role, parse

PRINTED = """\
900\tconnection\t127.0.0.1:1 -> 127.0.0.1:5672 - ns.order-1.stream
300\tconnection\t127.0.0.1:1 -> 127.0.0.1:5672
200\tconnection\t127.0.0.1:2 -> 127.0.0.1:5672 - ns.order-0.stream
50\tconnection\t127.0.0.1:3 -> 127.0.0.1:5672
120\tqueue\tns.order
80\tother\tosiris_writer
ok
"""


def test_parse_keeps_the_process_lines_only():
    rows = parse(PRINTED)
    assert rows[0] == (900, "connection", "127.0.0.1:1 -> 127.0.0.1:5672 - ns.order-1.stream")
    assert len(rows) == 6


def test_a_connections_processes_count_under_its_name_and_the_leader_is_marked():
    assert by_role(parse(PRINTED), "ns", "order-1") == {
        "order-1 (leader).stream": 1200, "order-0.stream": 200, "other connections": 50,
        "order": 120, "osiris_writer": 80}

"""The per-hop split of a trade, from bench.breakdown's output."""
from bench.hops import means, stages

BEFORE = """trade x 1, 3 order replica(s): 97 req/s, p50 9.28 ms, mean 10.1 ms
  frontend         http_request_duration_seconds{method=POST,route=/orders}: 500 x 8.100 ms
  frontend         rpc_call_duration_seconds{method=trade,service=order}: 500 x 7.690 ms
  catalog          rpc_handling_duration_seconds{method=trade,service=catalog}: 500 x 1.830 ms
  catalog          storage_fsync_duration_seconds{}: 500 x 0.380 ms
  order-1          rpc_call_duration_seconds{method=trade,service=catalog}: 500 x 2.950 ms
  order-1          rpc_handling_duration_seconds{method=trade,service=order}: 500 x 5.790 ms
  order-1          storage_fsync_duration_seconds{}: 500 x 0.500 ms
"""
AFTER = """trade x 1, 3 order replica(s): 158 req/s, p50 5.95 ms, mean 6.34 ms
  frontend         http_request_duration_seconds{method=POST,route=/orders}: 951 x 5.347 ms
  frontend         rpc_call_duration_seconds{method=trade,service=order}: 951 x 5.012 ms
  catalog          storage_fsync_duration_seconds{}: 29 x 0.972 ms
  order-0          rpc_handling_duration_seconds{method=trade,service=order}: 951 x 3.067 ms
  order-0          storage_fsync_duration_seconds{}: 951 x 0.561 ms
"""


def test_the_stages_add_up_to_the_http_trade_and_the_catalog_hop_is_gone_after():
    before, after = stages(means(BEFORE)), stages(means(AFTER))
    assert round(sum(before.values()), 3) == 8.1 and round(sum(after.values()), 3) == 5.347
    assert round(before["leader → catalog → leader"], 2) == 1.12 and round(before["catalog fsync"], 2) == 0.38
    assert after["leader → catalog → leader"] == after["catalog fsync"] == 0
    assert round(after["leader: stream round trip and own code"], 3) == 2.506

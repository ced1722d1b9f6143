"""The failure study's figures (bench/failover.py), from made-up trades."""
from bench.failover import figures, gaps


def trade(start, latency, statuses):
    return {"start": start, "end": start + latency, "latency": latency, "status": statuses[-1],
            "retries": len(statuses) - 1, "statuses": statuses}


def test_gap_spans_each_kill_from_the_last_success_before_to_the_first_after():
    assert gaps([1.0, 2.0, 4.5, 5.0], [2.5, 4.8]) == [2.5, 0.5]


def test_a_kill_with_no_success_after_it_has_an_endless_gap():
    assert gaps([1.0], [2.0]) == [float("inf")]


def test_figures_count_retried_and_failed_trades():
    requests = [trade(0.0, 0.002, [200]), trade(1.0, 0.9, [504, 200]), trade(1.1, 3.0, [503] * 3),
                trade(2.0, 0.003, [200])]
    result = figures(requests, [{"replica": "order_worker-0", "killed": 1.05, "restarted": 1.2}],
                     identical=True, quiesced_s=0.4, log_lines=[3])
    assert (result["trades"], result["succeeded"], result["needed_retry"]) == (4, 3, 2)
    assert result["failed"] == [requests[2]]
    assert result["answers"] == {"200": 3, "503": 3, "504": 1}
    assert round(result["kills"][0]["gap_s"], 3) == 1.898  # from the first trade's end to the retried one's
    assert result["longest_gap_s"] == result["kills"][0]["gap_s"]

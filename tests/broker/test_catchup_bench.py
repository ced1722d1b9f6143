"""bench.catchup against the tests' broker: a replica on an empty directory reads the whole stream."""
from bench import catchup


def test_a_new_replica_catches_up_and_the_bench_says_how_fast(amqp_url, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URL", amqp_url)
    catchup.main(["--entries", "50", "--runs", "1"])
    out = capsys.readouterr().out
    assert out.startswith("replica 0: 50 entries in ") and "entries a second" in out, out

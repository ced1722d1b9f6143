"""The frontend's cache against the real stack: hits, two frontends, races, a lost events connection."""
import threading
import time

import pytest

from client.session import Session

FISHCO = "/stocks/FishCo"


def quantity(api, path=FISHCO):
    status, body, headers = api.get(path)
    assert status == 200
    return body["data"]["quantity"], headers["X-Cache"]


def wait_for(api, cache, timeout=5):
    """Look FishCo up until the answer says X-Cache: ``cache``; return every quantity seen."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        seen.append(quantity(api))
        if seen[-1][1] == cache:
            return [q for q, _ in seen]
        assert time.monotonic() < deadline, f"no X-Cache: {cache} within {timeout} s"
        time.sleep(0.01)


def buy(api, amount=1):
    status, body, _ = api.post("/orders", {"name": "FishCo", "quantity": amount, "type": "buy"})
    assert (status, list(body["data"])) == (200, ["transaction_number"])


def test_a_lookup_is_cached_and_a_trade_here_is_seen_at_once(api):
    assert wait_for(api, "hit")[-1] == 100
    assert api.get("/stocks/NoSuchCo")[0] == 404
    buy(api, 3)
    assert quantity(api)[0] == 97  # a miss, or a hit if the event updated the entry first
    assert quantity(api) == (97, "hit")


def test_a_trade_through_one_frontend_reaches_the_other(api, other_api):
    wait_for(api, "hit")
    wait_for(other_api, "hit")
    buy(api, 3)
    deadline = time.monotonic() + 2
    while quantity(other_api) != (97, "hit"):  # the event updates the entry in place
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.slow
def test_racing_trades_and_lookups_end_on_the_final_quantity(api, other_api, other_frontend, stack):
    wait_for(api, "hit")
    wait_for(other_api, "hit")
    done, regressions = threading.Event(), []

    def look(url):
        session, last = Session(url), 100
        while not done.is_set():
            now = quantity(session)[0]
            if now > last:  # only buys: a frontend going back up served a stale value
                regressions.append((url, last, now))
            last = now
        session.close()

    lookers = [threading.Thread(target=look, args=(url,)) for url in (stack.url, other_frontend) * 2]
    for thread in lookers:
        thread.start()
    traders = [threading.Thread(target=lambda: [buy(Session(stack.url)) for _ in range(15)]) for _ in range(4)]
    for thread in traders:
        thread.start()
    for thread in traders:
        thread.join()
    assert quantity(api)[0] == 40
    deadline = time.monotonic() + 2
    while quantity(other_api)[0] != 40:
        assert time.monotonic() < deadline
    done.set()
    for thread in lookers:
        thread.join()
    assert regressions == []


def test_no_stale_read_after_the_events_connection_is_lost(api, other_api, stack):
    wait_for(other_api, "hit")
    assert stack.admin.close_connections("frontend-events") == 2  # both frontends'
    buy(api, 3)  # perhaps while the other frontend's queue is gone: it would never hear of it
    wait_for(other_api, "miss")  # so it dropped its cache
    assert set(wait_for(other_api, "hit")) == {97}

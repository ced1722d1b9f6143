"""Probes: /healthz needs nothing but the process, /readyz pings the broker and each worker."""



def test_healthz(api):
    assert api.get("/healthz")[:2] == (200, {"data": {"status": "ok"}})


def test_readyz_when_everything_answers(api):
    assert api.get("/readyz")[:2] == (200, {"data": {"catalog": "ok", "order": "ok"}})


def test_readyz_names_the_worker_that_does_not_answer(stack, api):
    stack.stop("order")
    status, body, _ = api.get("/readyz")
    assert (status, body["error"]["code"]) == (503, 503)
    assert body["error"]["message"].startswith("not ready: order: ")
    assert "catalog" not in body["error"]["message"]
    assert api.get("/healthz")[0] == 200
"""Unit tests for the Future combinators the RPC server's quick handlers answer with."""
from concurrent.futures import Future

import pytest

from broker.futures import gather, then


def done(result=None, error=None):
    future: Future = Future()
    future.set_exception(error) if error else future.set_result(result)
    return future


def test_then_makes_its_result_from_the_first_once_it_is_done():
    first: Future = Future()
    made = then(first, lambda n: n + 1)
    assert not made.done()
    first.set_result(1)
    assert made.result() == 2


@pytest.mark.parametrize("first, make", [(done(error=KeyError("k")), lambda n: n),
                                         (done(1), lambda n: n / 0)])
def test_then_passes_on_the_first_error_or_its_own(first, make):
    assert isinstance(then(first, make).exception(), KeyError | ZeroDivisionError)


def test_gather_waits_for_every_future():
    futures = [Future(), Future()]
    made = gather(futures, lambda all_: [f.result() for f in all_])
    futures[1].set_result("b")
    assert not made.done()
    futures[0].set_result("a")
    assert made.result() == ["a", "b"]


def test_gather_gives_none_if_any_declined_and_an_error_if_making_fails():
    assert gather([done(1), done(None)], lambda all_: "made").result() is None
    failed = gather([done(1), done(error=ValueError("v"))], lambda all_: [f.result() for f in all_])
    assert isinstance(failed.exception(), ValueError)


def test_gather_of_nothing_is_made_at_once():
    assert gather([], lambda all_: len(all_)).result() == 0

"""Futures made from other Futures: the replies a quick handler settles on whichever thread is done."""
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


def gather(futures: Sequence[Future], make: Callable[[Sequence[Future]], Any]) -> Future:
    """A Future of ``make(futures)`` once all of them are done; of None if any gave None."""
    made: Future = Future()
    left, lock = [len(futures)], threading.Lock()

    def done(_: Future) -> None:
        with lock:
            left[0] -= 1
            if left[0]:
                return
        try:
            declined = any(f.exception() is None and f.result() is None for f in futures)
            made.set_result(None if declined else make(futures))
        except Exception as exc:  # noqa: BLE001 - passed on to whoever waits for ``made``
            made.set_exception(exc)

    if not futures:
        made.set_result(make(futures))
    for future in futures:
        future.add_done_callback(done)
    return made


def then(future: Future, make: Callable[[Any], Any]) -> Future:
    """A Future of ``make(result)`` once ``future`` is done (or of its exception, or ``make``'s)."""
    made: Future = Future()

    def done(_: Future) -> None:
        try:
            made.set_result(make(future.result()))
        except Exception as exc:  # noqa: BLE001 - passed on to whoever waits for ``made``
            made.set_exception(exc)

    future.add_done_callback(done)
    return made

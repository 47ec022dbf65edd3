"""Background prefetching keeps order, re-raises errors where they occur, and stops early."""

from __future__ import annotations

import threading
import time

import pytest

from facereenact.io.prefetch import prefetch


def test_items_arrive_in_order() -> None:
    assert list(prefetch(range(100), depth=3)) == list(range(100))


def test_an_error_is_raised_at_the_item_where_it_happened() -> None:
    def items():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise ValueError("broken at 3")

    seen = []
    with pytest.raises(ValueError, match="broken at 3"):
        for item in prefetch(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_stops_and_closes_the_producer() -> None:
    closed = threading.Event()

    def endless():  # type: ignore[no-untyped-def]
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    iterator = prefetch(endless(), depth=2)
    assert [next(iterator) for _ in range(5)] == [0, 1, 2, 3, 4]
    iterator.close()
    deadline = time.monotonic() + 5
    while not closed.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed.is_set(), "the producer's finally block must run"
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate() if t is not threading.current_thread())

"""prefetch: same items, same order, errors passed on, the thread stops with the consumer."""

import threading
import time

import pytest

from attention.data import prefetch


def test_same_items_in_order_with_transform():
    assert list(prefetch(range(20), size=3)) == list(range(20))
    assert list(prefetch(iter(range(5)), transform=lambda x: x * x)) == [0, 1, 4, 9, 16]
    assert list(prefetch([])) == []


def test_error_is_raised_in_the_consumer_at_its_position():
    def items():
        yield 1
        yield 2
        raise RuntimeError("broken batch")

    seen = []
    with pytest.raises(RuntimeError, match="broken batch"):
        for item in prefetch(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_runs_ahead_and_stops_when_the_consumer_leaves():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = prefetch(items(), size=2)
    assert next(stream) == 0
    time.sleep(0.3)
    assert 2 <= len(produced) <= 5  # ran ahead, but no further than the queue allows
    stream.close()
    assert not any(t.name == "attention-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 10


@pytest.mark.outside_annotations
def test_size_must_be_positive():
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        prefetch(range(3), size=0)
    with pytest.raises(TypeError, match=r"size must be a positive int, got 2.0 \(float\)"):
        prefetch(range(3), size=2.0)
    with pytest.raises(TypeError, match=r"size must be a positive int, got True \(bool\)"):
        prefetch(range(3), size=True)

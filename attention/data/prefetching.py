"""Step 18h: prefetching, the next batches made in a background thread while the device computes.

A jitted train step returns as soon as its work is queued on the accelerator (JAX dispatches
asynchronously). If the Python loop then spends milliseconds padding the next batch, the
device waits for it. :func:`prefetch` runs the batch iterator in a thread, ``size`` batches
ahead, so that the next batch is usually ready when the loop asks for it. A thread (not a
process) is enough: NumPy releases the GIL for most of the work, and nothing is pickled.

Pass ``transform=jax.device_put`` to start the host-to-device copy in the thread as well.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from attention._checks import check_positive_int

T = TypeVar("T")

_DONE = object()  # marks the end of the iterator in the queue


def prefetch(
    iterable: Iterable[T], size: int = 2, *, transform: Callable[[T], object] | None = None
) -> Iterator:
    """Yield the items of ``iterable`` in order, computed up to ``size`` items ahead.

    An exception raised by the iterable (or ``transform``) is re-raised in the consumer, at
    the position where it happened. Stopping early (``break``, or closing the generator)
    stops the thread.

    Args:
      iterable: for example ``batcher.epoch(e)``.
      size: how many items may wait, ready, in the queue.
      transform: applied to each item in the thread, e.g. ``jax.device_put``.

    Raises:
      TypeError: ``size`` not an int.
      ValueError: ``size < 1``.

    >>> list(prefetch(iter(range(5)), size=2))
    [0, 1, 2, 3, 4]
    """
    size = check_positive_int("size", size)
    return _prefetch(iter(iterable), size, transform)


def _prefetch(iterator, size, transform):
    # A separate generator, so that the argument checks above run when prefetch() is called,
    # not at the first next().
    ready: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():  # time out now and then to notice that the consumer left
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not put((transform(item) if transform else item, None)):
                    return
        except BaseException as error:  # noqa: BLE001 - handed over to the consumer
            put((_DONE, error))
            return
        put((_DONE, None))

    thread = threading.Thread(target=produce, name="attention-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        if not sys.is_finalizing():  # a stream left open at exit: its daemon thread just ends
            thread.join(timeout=5)

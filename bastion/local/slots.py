"""A fixed set of resources lent to coroutines, with a bounded wait queue (the local model's slots)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

from bastion.errors import UpstreamUnavailable
from bastion.observability.metrics import LOCAL_QUEUE

T = TypeVar("T")


class SlotPool(Generic[T]):
    """A fixed set of items lent to coroutines, with a bounded FIFO of waiters.

    Items are released from worker threads and waiters may live on different event loops (tests
    use one loop each), so this is built on a thread lock and per-waiter futures rather than on
    an ``asyncio.Queue``, which binds to one loop.
    """

    def __init__(self, items: list[T], max_queue: int) -> None:
        self._lock = threading.Lock()
        self._free: list[T] = list(items)
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[T]]] = deque()
        self.size = len(items)
        self.max_queue = max_queue

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def free(self) -> int:
        return len(self._free)

    async def acquire(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            # Take a free item only if nobody is queued ahead (an item may be in hand-over to one).
            if self._free and not self._waiters:
                return self._free.pop()
            if len(self._waiters) >= self.max_queue:
                raise UpstreamUnavailable(
                    f"local model is busy: {self.size} generation(s) running and "
                    f"{len(self._waiters)} waiting (local.max_queue); retry shortly",
                    retry_after_s=1.0,
                )
            future: asyncio.Future[T] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
            LOCAL_QUEUE.inc()
        try:
            return await future
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    LOCAL_QUEUE.dec()
                    removed = True
                except ValueError:
                    removed = False  # already popped by release(): an item is ours or on its way
            if not removed and future.done() and not future.cancelled():
                self.release(future.result())
            # If the future was cancelled before the hand-over ran, _hand_over gives the item back.
            raise

    def release(self, item: T) -> None:
        """Return an item; callable from any thread."""
        while True:
            with self._lock:
                if not self._waiters:
                    self._free.append(item)
                    return
                loop, future = self._waiters.popleft()
                LOCAL_QUEUE.dec()
            try:
                loop.call_soon_threadsafe(self._hand_over, future, item)
                return
            except RuntimeError:
                continue  # that waiter's loop is closed; nobody will collect it, try the next

    def _hand_over(self, future: asyncio.Future[T], item: T) -> None:
        if future.done():  # the waiter was cancelled in the meantime
            self.release(item)
        else:
            future.set_result(item)

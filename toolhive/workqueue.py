"""Per-object work queue: events in, serialised reconciles out.

A key is processed by at most one worker at a time; events for a key that is queued or being processed
coalesce into one more pass (level-triggered: the reconcile reads current state, so one pass covers any
number of events). Different keys run in parallel up to `workers`. A failing key is retried after an
exponential backoff with jitter, capped; success forgets its failures. Triggers (why a key was queued, with
optional span links) accumulate until the next pass starts, so a trace shows what caused it.
Called by the multiplexer (add, forget) and by nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Trigger:
    """Why a key was queued: `reason` such as `mcpserver.modified`; `link` an optional span context."""

    reason: str
    link: Any = None


@dataclasses.dataclass(frozen=True)
class Result:
    """What a pass asks for: `retry` backs off exponentially; `requeue_after` schedules a recheck."""

    retry: bool = False
    requeue_after: float | None = None


Process = Callable[[K, tuple[Trigger, ...]], Awaitable[Result]]


class WorkQueue(Generic[K]):
    def __init__(
        self,
        process: Process[K],
        *,
        workers: int,
        base_backoff: float = 0.05,
        max_backoff: float = 60.0,
    ) -> None:
        self._process = process
        self._workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()  # queued again while active
        self._triggers: dict[K, list[Trigger]] = {}
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._finished = asyncio.Event()  # set whenever a pass ends
        self._closed = False  # draining: no new passes start

    # -- producers ------------------------------------------------------------------------------------

    def add(self, key: K, trigger: Trigger | None = None) -> None:
        if trigger is not None:
            triggers = self._triggers.setdefault(key, [])
            if len(triggers) < 16:  # bounded: enough to explain a pass, never a backlog
                triggers.append(trigger)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._idle.clear()
            self._wakeup.set()

    def add_after(self, key: K, delay: float, trigger: Trigger | None = None) -> None:
        if key in self._timers or key in self._queued:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire_timer, key, trigger)
        self._idle.clear()

    def forget(self, keys: Iterable[K]) -> None:
        """Drop pending work for `keys` (a namespace leaving); active passes finish on their own."""
        for key in list(keys):
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            if key in self._queued:
                self._queued.discard(key)
                self._ready.remove(key)
            self._dirty.discard(key)
            self._triggers.pop(key, None)
            self._failures.pop(key, None)
        self._maybe_idle()

    # -- observers ------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._ready) + len(self._timers)

    def is_active(self, key: K) -> bool:
        return key in self._active

    async def wait_inactive(self, keys: Iterable[K]) -> None:
        """Return once none of `keys` is being processed (used before releasing a namespace)."""
        wanted = set(keys)
        while wanted & self._active:
            self._finished.clear()
            await self._finished.wait()

    async def drain(self, *, timeout: float) -> bool:
        """Stop starting passes and wait up to `timeout` for running ones; True if all finished."""
        self._closed = True
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it may swallow a cancel (< 3.12)
                await self.wait_inactive(list(self._active))
        except TimeoutError:
            return False
        return True

    async def join(self) -> None:
        """Return once nothing is queued, scheduled or running."""
        await self._idle.wait()

    # -- consumers ------------------------------------------------------------------------------------

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker(), name=f"worker-{n}") for n in range(self._workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            for timer in self._timers.values():
                timer.cancel()

    async def _worker(self) -> None:
        while True:
            while not self._ready or self._closed:
                self._wakeup.clear()
                await self._wakeup.wait()
            key = self._ready.popleft()
            self._queued.discard(key)
            self._active.add(key)
            triggers = tuple(self._triggers.pop(key, ()))
            try:
                result = await self._process(key, triggers)
            except asyncio.CancelledError:
                raise
            except Exception:  # the top-level loop: one bad object must not stop the operator
                log.exception("reconcile of %s crashed", key)
                result = Result(retry=True)
            finally:
                self._active.discard(key)
                self._finished.set()
            self._settle(key, result)

    def _settle(self, key: K, result: Result) -> None:
        if result.retry:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            ceiling = min(self._max_backoff, self._base_backoff * 2**failures)
            delay = random.uniform(ceiling / 2, ceiling)
        else:
            self._failures.pop(key, None)
            delay = result.requeue_after if result.requeue_after is not None else -1.0
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        elif delay >= 0:
            self.add_after(key, delay, Trigger("retry" if result.retry else "requeue"))
        self._maybe_idle()

    def _fire_timer(self, key: K, trigger: Trigger | None) -> None:
        self._timers.pop(key, None)
        self.add(key, trigger)

    def _maybe_idle(self) -> None:
        if not self._ready and not self._active and not self._timers:
            self._idle.set()

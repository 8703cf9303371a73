"""The work queue's guarantees: one pass per key at a time, coalescing, bounded parallelism, backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from toolhive.workqueue import Result, Trigger, WorkQueue


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=10))


async def started(queue: WorkQueue[str]) -> asyncio.Task[None]:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    return task


def test_passes_of_one_key_never_overlap_and_events_during_a_pass_coalesce() -> None:
    async def scenario() -> None:
        running: set[str] = set()
        passes: list[tuple[str, tuple[str, ...]]] = []
        release = asyncio.Event()

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            assert key not in running, "two passes of one key overlapped"
            running.add(key)
            passes.append((key, tuple(t.reason for t in triggers)))
            if len(passes) == 1:
                await release.wait()
            running.discard(key)
            return Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=4)
        task = await started(queue)
        queue.add("a", Trigger("first"))
        while not passes:
            await asyncio.sleep(0)
        for n in range(5):  # five events while the first pass runs ...
            queue.add("a", Trigger(f"event-{n}"))
        release.set()
        await queue.join()
        task.cancel()
        # ... make exactly one more pass, which sees every trigger.
        assert passes == [("a", ("first",)), ("a", tuple(f"event-{n}" for n in range(5)))]

    run(scenario)


def test_different_keys_run_in_parallel_up_to_the_worker_limit() -> None:
    async def scenario() -> None:
        active = 0
        peak = 0
        gate = asyncio.Event()

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await gate.wait()
            active -= 1
            return Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=3)
        task = await started(queue)
        for n in range(10):
            queue.add(f"k{n}")
        while active < 3:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert active == 3
        gate.set()
        await queue.join()
        task.cancel()
        assert peak == 3

    run(scenario)


def test_a_failing_key_is_retried_with_backoff_until_it_succeeds() -> None:
    async def scenario() -> None:
        attempts: list[tuple[str, ...]] = []

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            attempts.append(tuple(t.reason for t in triggers))
            return Result(retry=len(attempts) < 3)

        queue: WorkQueue[str] = WorkQueue(process, workers=1, base_backoff=0.001, max_backoff=0.01)
        task = await started(queue)
        queue.add("a", Trigger("created"))
        await queue.join()
        task.cancel()
        assert attempts == [("created",), ("retry",), ("retry",)]

    run(scenario)


def test_a_crashing_pass_is_logged_and_retried_not_fatal() -> None:
    async def scenario() -> None:
        calls = 0

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            return Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=1, base_backoff=0.001)
        task = await started(queue)
        queue.add("a")
        await queue.join()
        task.cancel()
        assert calls == 2

    run(scenario)


def test_forget_drops_pending_work_and_scheduled_retries() -> None:
    async def scenario() -> None:
        seen: list[str] = []
        gate = asyncio.Event()

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            seen.append(key)
            if key == "busy":
                await gate.wait()
            return Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=1)
        task = await started(queue)
        queue.add("busy")
        while not seen:
            await asyncio.sleep(0)
        queue.add("ns-b/x")
        queue.add_after("ns-b/y", 0.01)
        queue.forget(["ns-b/x", "ns-b/y"])
        assert queue.depth == 0
        gate.set()
        await queue.join()
        task.cancel()
        assert seen == ["busy"]

    run(scenario)


def test_wait_inactive_returns_only_after_the_running_pass_ends() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        finished = False

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            nonlocal finished
            await gate.wait()
            finished = True
            return Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=1)
        task = await started(queue)
        queue.add("a")
        while not queue.is_active("a"):
            await asyncio.sleep(0)
        waiter = asyncio.create_task(queue.wait_inactive(["a"]))
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.set()
        await waiter
        assert finished
        task.cancel()

    run(scenario)


def test_requeue_after_schedules_a_recheck() -> None:
    async def scenario() -> None:
        reasons: list[tuple[str, ...]] = []

        async def process(key: str, triggers: tuple[Trigger, ...]) -> Result:
            reasons.append(tuple(t.reason for t in triggers))
            return Result(requeue_after=0.001) if len(reasons) == 1 else Result()

        queue: WorkQueue[str] = WorkQueue(process, workers=1)
        task = await started(queue)
        queue.add("a", Trigger("created"))
        await queue.join()
        task.cancel()
        assert reasons == [("created",), ("requeue",)]

    run(scenario)

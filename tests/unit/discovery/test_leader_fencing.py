"""Leader election never lets two replicas act at once (found by the chaos soak).

- A renewal stuck in retries or latency cannot keep a replica leading past the renew deadline: the attempt
  is bounded, the work is cancelled, and `is_leader` is already False while the work stops (so the operator
  cancels its passes instead of draining them).
- Stopping while leading releases the lease and does not take it back: renewals stop before the release.

Real time, short lease (the elector's sleeps are what is tested); the lease store is in memory.
"""

from __future__ import annotations

import asyncio
import time

from discovery import leader
from tests.unit.discovery.test_leader import LeaseStore

SECONDS = 0.6  # lease; renew deadline 0.4 s, renew every 0.1 s


class HangingStore(LeaseStore):
    """Answers normally until `hang` is set, then takes 3 s per read (a call stuck in retries)."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def get_or_none(self, *args: object, **kwargs: object) -> dict[str, object] | None:
        if self.hang:
            await asyncio.sleep(3)
        return await super().get_or_none(*args, **kwargs)  # type: ignore[arg-type]


def make(store: LeaseStore, identity: str) -> leader.LeaderElector:
    config = leader.LeaseConfig(
        name="op",
        namespace="ns",
        identity=identity,
        lease_seconds=SECONDS,
        renew_seconds=0.1,
        retry_seconds=0.1,
    )
    return leader.LeaderElector(store, config)  # type: ignore[arg-type]


def test_a_stuck_renewal_stops_the_work_by_the_renew_deadline_without_a_drain() -> None:
    store = HangingStore()
    elector = make(store, "a")
    seen: dict[str, object] = {}

    async def work() -> None:
        seen["started"] = time.monotonic()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["stopped"] = time.monotonic()
            seen["leading_when_stopped"] = elector.is_leader
            raise

    async def scenario() -> None:
        campaign = asyncio.create_task(elector.run(work))
        while "started" not in seen:
            await asyncio.sleep(0.01)
        store.hang = True
        while "stopped" not in seen:
            await asyncio.sleep(0.01)
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    held = float(seen["stopped"]) - float(seen["started"])  # type: ignore[arg-type]
    assert held < SECONDS, f"work ran {held:.2f}s with no renewal: past the {SECONDS}s lease"
    assert seen["leading_when_stopped"] is False


def test_stopping_while_leading_releases_the_lease_and_keeps_it_released() -> None:
    store = LeaseStore()
    elector = make(store, "a")

    async def work() -> None:
        await asyncio.Event().wait()

    async def scenario() -> None:
        campaign = asyncio.create_task(elector.run(work))
        while not elector.is_leader:
            await asyncio.sleep(0.01)
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        await asyncio.sleep(0.3)  # three renewal periods: a renewal still running would re-take it now

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert store.leases["op"]["spec"]["holderIdentity"] == ""

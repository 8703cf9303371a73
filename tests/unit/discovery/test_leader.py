"""Lease-based leader election: one leader, takeover after expiry, release on shutdown, conflicts lose."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from discovery import kube, leader

Body = dict[str, Any]


class LeaseStore:
    """One namespace's Leases with resourceVersion conflicts, like the API server."""

    def __init__(self) -> None:
        self.leases: dict[str, Body] = {}
        self.version = 0

    def _bump(self, body: Body) -> Body:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    async def get_or_none(
        self, res: kube.Resource, name: str, *, namespace: str | None = None
    ) -> Body | None:
        found = self.leases.get(name)
        return copy.deepcopy(found) if found else None

    async def create(self, res: kube.Resource, body: Body, *, namespace: str | None = None) -> Body:
        if body["metadata"]["name"] in self.leases:
            raise kube.ApiError(409, {"reason": "AlreadyExists"})
        return self._bump(body)

    async def replace(self, res: kube.Resource, body: Body) -> Body:
        current = self.leases[body["metadata"]["name"]]
        if current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise kube.ApiError(409, {"reason": "Conflict"})
        return self._bump(body)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(store: LeaseStore, clock: Clock, identity: str) -> leader.LeaderElector:
    config = leader.LeaseConfig(name="op", namespace="ns", identity=identity, lease_seconds=15)
    return leader.LeaderElector(store, config, clock=clock)  # type: ignore[arg-type]


def test_the_first_candidate_leads_and_a_second_stands_by() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert asyncio.run(a.try_acquire_or_renew()) is True
    assert asyncio.run(b.try_acquire_or_renew()) is False
    assert store.leases["op"]["spec"]["holderIdentity"] == "a"


def test_the_leader_renews_without_a_transition() -> None:
    store, clock = LeaseStore(), Clock()
    a = elector(store, clock, "a")
    asyncio.run(a.try_acquire_or_renew())
    clock.now += 5
    assert asyncio.run(a.try_acquire_or_renew()) is True
    assert store.leases["op"]["spec"]["leaseTransitions"] == 0


def test_a_standby_takes_over_only_after_the_lease_expired_on_its_own_clock() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    asyncio.run(a.try_acquire_or_renew())
    assert asyncio.run(b.try_acquire_or_renew()) is False  # b observes the record now
    clock.now += 14
    assert asyncio.run(b.try_acquire_or_renew()) is False
    clock.now += 2
    assert asyncio.run(b.try_acquire_or_renew()) is True
    assert store.leases["op"]["spec"]["holderIdentity"] == "b"
    assert store.leases["op"]["spec"]["leaseTransitions"] == 1


def test_renewals_seen_by_the_standby_keep_the_lease_alive() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    asyncio.run(a.try_acquire_or_renew())
    for _ in range(5):
        clock.now += 10
        assert asyncio.run(a.try_acquire_or_renew()) is True
        assert asyncio.run(b.try_acquire_or_renew()) is False


def test_release_lets_a_standby_take_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    asyncio.run(a.try_acquire_or_renew())
    asyncio.run(a.release())
    assert store.leases["op"]["spec"]["holderIdentity"] == ""
    assert asyncio.run(b.try_acquire_or_renew()) is True


def test_a_concurrent_write_makes_the_loser_stand_by() -> None:
    store, clock = LeaseStore(), Clock()
    a, b, c = elector(store, clock, "a"), elector(store, clock, "b"), elector(store, clock, "c")
    asyncio.run(a.try_acquire_or_renew())
    assert not asyncio.run(b.try_acquire_or_renew())
    assert not asyncio.run(c.try_acquire_or_renew())
    clock.now += 20  # a stopped renewing: both standbys see the lease expired and race for it

    async def race() -> list[bool]:
        return list(await asyncio.gather(b.try_acquire_or_renew(), c.try_acquire_or_renew()))

    assert sorted(asyncio.run(race())) == [False, True]


def test_run_cancels_work_when_the_lease_is_lost() -> None:
    store, clock = LeaseStore(), Clock()
    config = leader.LeaseConfig(
        name="op", namespace="ns", identity="a", lease_seconds=3, renew_seconds=0.01, retry_seconds=0.01
    )
    a = leader.LeaderElector(store, config, clock=clock)  # type: ignore[arg-type]
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def scenario() -> None:
        runner = asyncio.create_task(a.run(work))
        while not a.is_leader:
            await asyncio.sleep(0.005)
        # Another replica steals the lease record (e.g. after a long pause of this one).
        stolen = store.leases["op"]
        stolen["spec"]["holderIdentity"] = "b"
        store._bump(stolen)
        await asyncio.wait_for(cancelled.wait(), timeout=5)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(scenario())
    assert cancelled.is_set()


def test_an_api_error_while_campaigning_is_retried_not_fatal() -> None:
    store, clock = LeaseStore(), Clock()
    failures = [kube.ApiError(403, {"reason": "Forbidden"})] * 2
    original = store.get_or_none

    async def flaky(res: kube.Resource, name: str, *, namespace: str | None = None) -> Body | None:
        if failures:
            raise failures.pop()
        return await original(res, name, namespace=namespace)

    store.get_or_none = flaky  # type: ignore[method-assign]
    config = leader.LeaseConfig(name="op", namespace="ns", identity="a", retry_seconds=0.001)
    candidate = leader.LeaderElector(store, config, clock=clock)  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(candidate._acquire(), timeout=5))
    assert candidate.is_leader and not failures

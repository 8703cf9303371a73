"""Leader election over a coordination.k8s.io/v1 Lease, so two replicas never act at once.

The algorithm follows client-go's leaderelection: a candidate takes the lease when it is free or expired,
the leader renews it every `renew_seconds` with an optimistic-concurrency update (409 means someone else
wrote it), and gives up (stops its work) when it could not renew for `renew_deadline` seconds. Expiry is
judged by *this* process's monotonic clock from the moment it last saw the lease record change, never by
comparing timestamps written by another machine, so clock skew between nodes cannot create two leaders.
On graceful shutdown the leader releases the lease (empty holder), letting a standby take over at once.

    standby --lease free/expired--> leading --renew failed past deadline / stop--> standby (work cancelled)

Used by both processes' runners. `work` is started on acquiring and cancelled on losing the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from discovery import kube

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0

    @property
    def renew_deadline(self) -> float:
        """Stop leading when no renewal succeeded for this long (well before others may take over)."""
        return self.lease_seconds * 2 / 3


def micro_time() -> str:
    """Now as a metav1.MicroTime (six fraction digits), the format Lease times must have."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: kube.Api,
        config: LeaseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self.clock = clock
        self.is_leader = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign forever; run `work` while leading. Returns only if `work` returns while leading."""
        while True:
            await self._acquire()
            task = asyncio.create_task(work(), name="leader work")
            try:
                lost = asyncio.create_task(self._keep(), name="lease renew")
                done, _ = await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    lost.cancel()
                    task.result()
                    return
                log.error("lost the lease %s; stopping work until it is regained", self.config.name)
                # Not leading any more, already now: `work` must stop at once, not drain (another replica
                # may take over as soon as the lease expires).
                self.is_leader = False
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            except asyncio.CancelledError:
                task.cancel()  # stopping while leading: `work` may drain; renewals go on meanwhile
                await asyncio.gather(task, return_exceptions=True)
                lost.cancel()  # then stop renewing, or the renewal would take the released lease back
                await asyncio.gather(lost, return_exceptions=True)
                await self.release()
                raise
            finally:
                self.is_leader = False

    async def _acquire(self) -> None:
        announced = False
        failing = False
        while True:
            try:
                if await self.try_acquire_or_renew():
                    break
                if not announced:
                    log.info("standing by: lease %s is held by another replica", self.config.name)
                    announced = True
            except kube.ApiError as error:  # e.g. 403 before the chart's Role exists: keep campaigning
                if not failing:
                    log.warning("cannot campaign for lease %s yet: %s", self.config.name, error)
                    failing = True
            await asyncio.sleep(self.config.retry_seconds)
        log.info("leading: acquired lease %s as %s", self.config.name, self.config.identity)

    async def _keep(self) -> None:
        """Renew until a renewal has failed for `renew_deadline`; then return (leadership lost)."""
        last_success = self.clock()
        while True:
            await asyncio.sleep(self.config.renew_seconds)
            # One attempt may not outlast the deadline (client-go bounds it the same way): a renewal stuck
            # in retries or latency must not keep this replica leading after a standby may have taken over.
            left = self.config.renew_deadline - (self.clock() - last_success)
            try:
                async with asyncio.timeout(max(left, 0.0)):  # not wait_for: it may swallow a cancel (< 3.12)
                    renewed = await self.try_acquire_or_renew()
            except TimeoutError:
                log.warning("lease renewal did not answer within the renew deadline")
                renewed = False
            except kube.ApiError as error:
                log.warning("lease renewal failed: %s", error)
                renewed = False
            if renewed:
                last_success = self.clock()
            elif self.clock() - last_success >= self.config.renew_deadline or not self._still_mine():
                return

    def _still_mine(self) -> bool:
        return self._observed is not None and self._observed[0] == self.config.identity

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the lease afterwards."""
        cfg = self.config
        lease = await self.api.get_or_none(kube.LEASES, cfg.name, namespace=cfg.namespace)
        now = micro_time()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": self._spec(acquire_time=now, renew_time=now, transitions=0),
            }
            try:
                created = await self.api.create(kube.LEASES, body, namespace=cfg.namespace)
            except kube.ApiError as error:
                if error.status == 409:
                    return False
                raise
            self._observe(created)
            self.is_leader = True
            return True

        spec = lease.get("spec") or {}
        self._observe(lease)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_seconds)
        expired = self.clock() - self._observed_at > duration
        if holder and holder != cfg.identity and not expired:
            self.is_leader = False
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == cfg.identity:
            new_spec = self._spec(
                acquire_time=spec.get("acquireTime") or now, renew_time=now, transitions=transitions
            )
        else:
            new_spec = self._spec(acquire_time=now, renew_time=now, transitions=transitions + 1)
        lease["spec"] = new_spec
        try:
            updated = await self.api.replace(kube.LEASES, lease)
        except kube.ApiError as error:
            if error.status == 409:  # someone else wrote it first
                self.is_leader = False
                return False
            raise
        self._observe(updated)
        self.is_leader = True
        return True

    async def release(self) -> None:
        """Give the lease up (graceful shutdown) so a standby need not wait for expiry."""
        if not self.is_leader:
            return
        cfg = self.config
        with contextlib.suppress(kube.ApiError, OSError):
            lease = await self.api.get_or_none(kube.LEASES, cfg.name, namespace=cfg.namespace)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == cfg.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.api.replace(kube.LEASES, lease)
                log.info("released lease %s", cfg.name)
        self.is_leader = False

    def _spec(self, *, acquire_time: str, renew_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_seconds)),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: kube.Body) -> None:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock()

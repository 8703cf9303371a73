"""Decide which namespaces the operator serves, and follow changes without a restart.

- cluster scope: serve cluster-wide once.
- namespace scope, static list: serve exactly that list (ToolHive's WATCH_NAMESPACE behaviour).
- namespace scope with discovery: follow `status.members` of the NamespaceDiscovery object. A namespace is
  served only once it is a member (its RoleBinding confirmed), so no watch is opened where the operator is
  not bound. A served namespace that stops being a member (draining, or gone) is released: passes finish,
  the operator's finalizers there are removed, watches stop, and then the grant's RoleBinding is annotated
  `released` so discovery may revoke it. The trace context discovery left on that RoleBinding becomes a
  span link on the passes the join queues.

Called by operator.py. Reads membership through an Informer limited to one object by field selector (the
operator's RBAC grants it that one name only); writes only through the Applier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from discovery import constants as discovery_constants
from discovery import informer, kube
from toolhive import resources, settings

log = logging.getLogger(__name__)

Release = Callable[[str], Awaitable[bool]]


class Membership:
    """What discovery published, reduced to what the operator needs."""

    def __init__(self, body: kube.Body | None) -> None:
        status = (body or {}).get("status") or {}
        self.members = frozenset(str(name) for name in status.get("members") or [])
        self.draining = frozenset(str(name) for name in status.get("draining") or [])


class DiscoveryScope:
    """Follows one NamespaceDiscovery object; serializes joins and releases in one loop."""

    def __init__(
        self,
        api: kube.Api,
        *,
        config: settings.DiscoverySettings,
        serve: Callable[[str, object], Awaitable[None]],
        release: Callable[[str], Awaitable[None]],
        acknowledge: Release,
        link_for_grant: Callable[[kube.Body | None], object],
        served: Callable[[], frozenset[str | None]],
    ) -> None:
        self.api = api
        self.config = config
        self._serve = serve
        self._release = release
        self._acknowledge = acknowledge
        self._link_for_grant = link_for_grant
        self._served = served
        self._changed = asyncio.Event()
        self._membership = Membership(None)
        self._acknowledged: set[str] = set()
        self._released: set[str] = set()  # draining, finalizers dropped, acknowledgement still to write
        self.informer = informer.Informer(
            api,
            resources.NAMESPACEDISCOVERIES,
            field_selector=f"metadata.name={config.resource_name}",
            handler=self._on_event,
        )

    def _on_event(self, event: informer.EventType, obj: kube.Body) -> None:
        self._membership = Membership(None if event == "DELETED" else obj)
        self._changed.set()

    async def run(self) -> None:
        watcher = asyncio.create_task(self.informer.run(), name="watch namespacediscovery")
        try:
            await self.informer.synced.wait()
            self._changed.set()
            failures = 0
            while True:
                await self._changed.wait()
                self._changed.clear()
                try:
                    await self._converge(self._membership)
                    failures = 0
                except kube.ApiError as error:
                    failures += 1
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    log.log(level, "membership change not applied yet, retrying: %s", error)
                    # Capped well under discovery's grace period: each draining namespace is on a clock.
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                    self._changed.set()
        finally:
            watcher.cancel()

    async def _converge(self, membership: Membership) -> None:
        """Apply one membership. Each namespace is handled on its own: one that fails (API errors) is
        retried later without holding up the others, whose grace periods are running too; what already
        succeeded is not redone. Raises the first failure, so `run` retries."""
        failures: list[kube.ApiError] = []

        async def attempt(step: Awaitable[None]) -> bool:
            try:
                await step
            except kube.ApiError as error:
                failures.append(error)
                return False
            return True

        served = {namespace for namespace in self._served() if namespace is not None}
        for namespace in sorted(served - membership.members):
            if await attempt(self._release(namespace)):
                self._released.add(namespace)
        for namespace in sorted(membership.draining - membership.members):
            if namespace in served and namespace not in self._released:
                continue  # its release just failed: never acknowledge before releasing
            await attempt(self._drain(namespace))
        self._acknowledged &= membership.draining  # bounded by the draining set
        self._released &= membership.draining
        for namespace in sorted(membership.members - served):
            await attempt(self._join(namespace))
        if failures:
            raise failures[0]

    async def _drain(self, namespace: str) -> None:
        if namespace in self._acknowledged:
            return
        # Also for namespaces never served in this process (it restarted while they drained).
        if namespace not in self._released:
            await self._release(namespace)
            self._released.add(namespace)
        await self._acknowledge(namespace)
        self._acknowledged.add(namespace)

    async def _join(self, namespace: str) -> None:
        grant = await self.api.get_or_none(
            resources.ROLEBINDINGS, self.config.rolebinding_name, namespace=namespace
        )
        await self._serve(namespace, self._link_for_grant(grant))


def traceparent_of(grant: kube.Body | None) -> str | None:
    annotations = ((grant or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(discovery_constants.TRACEPARENT_ANNOTATION)
    return str(value) if value else None

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
                    await asyncio.sleep(min(30.0, 0.1 * 2**failures))
                    self._changed.set()
        finally:
            watcher.cancel()

    async def _converge(self, membership: Membership) -> None:
        served = {namespace for namespace in self._served() if namespace is not None}
        for namespace in sorted(served - membership.members):
            await self._release(namespace)
        for namespace in sorted(membership.draining - membership.members):
            # Also for namespaces never served in this process (it restarted while they drained).
            if namespace not in self._acknowledged and namespace not in served:
                await self._release(namespace)
            if namespace not in self._acknowledged:
                await self._acknowledge(namespace)
                self._acknowledged.add(namespace)
        self._acknowledged &= membership.draining  # bounded by the draining set
        for namespace in sorted(membership.members - served):
            grant = await self.api.get_or_none(
                resources.ROLEBINDINGS, self.config.rolebinding_name, namespace=namespace
            )
            await self._serve(namespace, self._link_for_grant(grant))


def traceparent_of(grant: kube.Body | None) -> str | None:
    annotations = ((grant or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(discovery_constants.TRACEPARENT_ANNOTATION)
    return str(value) if value else None

"""Uninstall: revoke every grant one NamespaceDiscovery owner manages, through the normal revoke handshake.

Called by `toolhive-operator discovery cleanup` (the chart's pre-delete hook Job, run with discovery's own
ServiceAccount while discovery and the grantee still run). Steps, repeated until nothing is left or the
deadline passes: hold discovery's leader Lease (so an elected discovery stands down instead of re-granting),
publish every managed namespace as `draining` (the grantee releases its finalizers and annotates the grant
`released`), then remove the grant finalizer and delete each binding once released or after the grace
period. Idempotent; never touches a RoleBinding that lacks this owner's labels and name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from discovery import bindings, constants, grants, kube, leader
from discovery import config as discovery_config

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("discovery.cleanup")

UNINSTALLING = "Uninstalling"


@dataclasses.dataclass
class Report:
    """What a cleanup did: namespaces revoked after release, revoked after the grace, and left over."""

    released: list[str] = dataclasses.field(default_factory=list)
    forced: list[str] = dataclasses.field(default_factory=list)
    left: list[str] = dataclasses.field(default_factory=list)
    lease_held: bool = False

    @property
    def clean(self) -> bool:
        return not self.left


async def cleanup(
    api: kube.Api,
    config: discovery_config.Config,
    *,
    lease: leader.LeaseConfig | None,
    timeout_seconds: float,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Revoke all of `config.name`'s grants; returns when none is left or after `timeout_seconds`.

    `lease` is discovery's leader Lease: held by this process (renewed each round) so an elected discovery
    stops acting; None when discovery runs without leader election (it may then re-grant meanwhile).
    A grant is deleted once the grantee annotated it `released`, or `config.grace_seconds` after this
    cleanup first saw it (the grantee may not run at all). Done: the Lease stays held for one ordinary
    lease duration (Helm deletes discovery meanwhile). Given up: the Lease is given back at once, since the
    uninstall stops there and discovery must keep the cluster converged.
    """
    report = Report()
    writer = grants.Grants(api, config=config, tracer=_tracer, clock=lambda: datetime.now(UTC))
    started = clock()
    first_seen: dict[str, float] = {}
    renewed_at: float | None = None
    while True:
        now = clock()
        if lease is not None and (renewed_at is None or now - renewed_at >= lease.renew_seconds):
            hold = await _hold_lease(api, lease, hold_seconds=max(timeout_seconds, 60.0))
            report.lease_held = hold is not Hold.MISSED
            renewed_at = now
            if hold is Hold.TAKEN:
                # The deposed leader acts until its next renewal finds another holder, and that renewal
                # ends within its renew deadline: draining marks published earlier could be undone.
                log.info("waiting %.1fs for the deposed discovery leader to stand down", lease.renew_deadline)
                await asyncio.sleep(lease.renew_deadline)
                continue
        left = await _managed(api, config)
        await _publish(api, config, draining=sorted(left))
        if not left:
            report.left = []
            log.info(
                "cleanup done: %d released, %d revoked after the grace period",
                len(report.released),
                len(report.forced),
            )
            if lease is not None and report.lease_held:
                # Hold on only as long as an ordinary lease: Helm deletes discovery right after the hook,
                # and a reinstall soon after must not wait for the whole hold.
                await _hold_lease(api, lease, hold_seconds=lease.lease_seconds)
            return report
        for namespace, body in sorted(left.items()):
            first_seen.setdefault(namespace, now)
            annotations = body["metadata"].get("annotations") or {}
            released = annotations.get(constants.RELEASED_ANNOTATION) == "true"
            ours = (body.get("roleRef") or {}).get("name") == config.cluster_role
            if ours and not released and constants.DRAINING_ANNOTATION not in annotations:
                await _ignore_moved(_mark_draining(api, body))
                continue
            if ours and not released and now - first_seen[namespace] < config.grace_seconds:
                continue
            if await _ignore_moved(_revoke(api, body)):
                (report.released if released or not ours else report.forced).append(namespace)
                await writer.post_event(
                    grants.namespace_reference(namespace),
                    reason="Revoked",
                    message=f"RoleBinding {config.rolebinding_name}: revoked on uninstall"
                    + ("" if released else " (grace period over, not released)"),
                )
        if now - started >= timeout_seconds:
            report.left = sorted(left)
            log.error(
                "cleanup gave up after %.0fs; managed RoleBindings left in: %s",
                timeout_seconds,
                ", ".join(report.left),
            )
            if lease is not None:
                await _give_back(api, lease)  # the uninstall stops here: discovery resumes and converges
            return report
        await asyncio.sleep(poll_seconds)


async def _managed(api: kube.Api, config: discovery_config.Config) -> dict[str, kube.Body]:
    items, _ = await api.list(kube.ROLEBINDINGS, label_selector=config.managed_selector)
    return {
        str(item["metadata"]["namespace"]): item
        for item in items
        if item["metadata"].get("name") == config.rolebinding_name
    }


async def _publish(api: kube.Api, config: discovery_config.Config, *, draining: list[str]) -> None:
    """Tell the grantee: no members, these namespaces draining. Skipped when the object is gone (the
    grantee then releases every namespace it serves anyway)."""
    obj = await api.get_or_none(config.resource, config.name)
    if obj is None:
        return
    stored = obj.get("status") or {}
    message = (
        f"uninstalling: waiting for release of {len(draining)} namespaces" if draining else "uninstalled"
    )
    wanted: dict[str, Any] = {
        "members": [],
        "pending": [],
        "draining": draining,
        "memberCount": 0,
        "pendingCount": 0,
        "drainingCount": len(draining),
    }
    previous = [c for c in stored.get("conditions") or [] if c.get("type") != "Ready"]
    ready: dict[str, Any] = next((c for c in stored.get("conditions") or [] if c.get("type") == "Ready"), {})
    if ready.get("reason") != UNINSTALLING or ready.get("message") != message:
        ready = {
            "type": "Ready",
            "status": "False",
            "reason": UNINSTALLING,
            "message": message,
            "lastTransitionTime": ready.get("lastTransitionTime")
            if ready.get("status") == "False"
            else bindings.format_time(datetime.now(UTC)),
            "observedGeneration": int(obj["metadata"].get("generation") or 0),
        }
    wanted["conditions"] = [ready, *previous]
    if all(stored.get(key) == value for key, value in wanted.items()):
        return
    await _ignore_moved(api.patch(config.resource, config.name, {"status": wanted}, subresource="status"))


async def _mark_draining(api: kube.Api, body: kube.Body) -> None:
    annotations = body["metadata"].setdefault("annotations", {})
    annotations[constants.DRAINING_ANNOTATION] = bindings.format_time(datetime.now(UTC))
    await api.replace(kube.ROLEBINDINGS, body)


async def _revoke(api: kube.Api, body: kube.Body) -> None:
    meta = body["metadata"]
    release = bindings.build_release(body)
    if release is not None:
        body = await api.replace(kube.ROLEBINDINGS, release)
    if not body["metadata"].get("deletionTimestamp"):
        await api.delete(kube.ROLEBINDINGS, meta["name"], namespace=meta["namespace"], uid=meta.get("uid"))


async def _ignore_moved(write: Any) -> bool:
    """Await one write; False when the world moved (404/409: the next round reads again). 403 is
    logged (a binding we may not update, e.g. another roleRef) and retried until the deadline."""
    try:
        await write
    except kube.ApiError as error:
        if error.status in (404, 409):
            return False
        if error.status == 403:
            log.warning("cleanup write forbidden: %s", error)
            return False
        raise
    return True


class Hold(enum.Enum):
    """What one attempt to hold discovery's Lease did."""

    KEPT = "kept"  # created, or already ours
    TAKEN = "taken"  # another identity held it
    MISSED = "missed"  # raced or refused: the next round tries again


async def _hold_lease(api: kube.Api, lease: leader.LeaseConfig, *, hold_seconds: float) -> Hold:
    """Take discovery's Lease whoever holds it (the leader then stops at its next renewal), for
    `hold_seconds`. After an aborted uninstall discovery resumes once the hold expires and converges."""
    now = leader.micro_time()
    try:
        current = await api.get_or_none(kube.LEASES, lease.name, namespace=lease.namespace)
        spec = {
            "holderIdentity": lease.identity,
            "leaseDurationSeconds": max(1, round(hold_seconds)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        if current is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": lease.name, "namespace": lease.namespace},
                "spec": spec,
            }
            await api.create(kube.LEASES, body, namespace=lease.namespace)
            return Hold.KEPT
        old = current.get("spec") or {}
        transitions = int(old.get("leaseTransitions") or 0)
        holder = old.get("holderIdentity")
        if holder == lease.identity:
            spec["acquireTime"] = old.get("acquireTime") or now
            spec["leaseTransitions"] = transitions
        else:
            spec["leaseTransitions"] = transitions + 1
            log.info("taking lease %s from %r", lease.name, holder)
        current["spec"] = spec
        await api.replace(kube.LEASES, current)
        return Hold.KEPT if holder in (lease.identity, None, "") else Hold.TAKEN
    except kube.ApiError as error:
        if error.status in (404, 409):
            return Hold.MISSED  # raced with a renewal: the next round tries again
        log.warning("cannot hold lease %s (discovery may re-grant meanwhile): %s", lease.name, error)
        return Hold.MISSED


async def _give_back(api: kube.Api, lease: leader.LeaseConfig) -> None:
    """Empty the Lease's holder (as a leader does on shutdown) so a standby discovery takes over at once."""
    try:
        current = await api.get_or_none(kube.LEASES, lease.name, namespace=lease.namespace)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != lease.identity:
            return
        current["spec"]["holderIdentity"] = ""
        current["spec"]["leaseDurationSeconds"] = 1
        await api.replace(kube.LEASES, current)
    except kube.ApiError as error:
        log.warning("could not give lease %s back (it expires by itself): %s", lease.name, error)

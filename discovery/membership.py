"""Membership lifecycle: from decisions and the observed grants to a plan of writes and the published status.

Pure: no I/O; time arrives as `now`. The controller gathers an `Observed` (namespaces and RoleBindings), calls
`decide_plan`, hands `plan.actions` to the one writer (`grants.py`), then publishes `plan.status` when it
differs from what is stored. Only RoleBindings labelled as managed by discovery *and* by this owner are
ever the subject of an action; any other RoleBinding, even one with our name, is reported as a conflict and
left alone.

One namespace's life (states are what `status` publishes; arrows name the plan's action):

                   Create                          grant observed with our roleRef and subject
     absent -------------------------> pending ----------------------------------------------> member
       ^    selected, namespace exists    ^                                                     |  ^
       |                                  |   Repair / Recreate: roleRef or subjects drifted,   |  |
       |                                  +--------- or someone deleted the grant --------------+  |
       |                                                                                           |
       |            MarkDraining: unselected, denied or terminating (a namespace with a grant)     |
       |                                        |                                                  |
       |                                        v               Restore: selected again            |
       +------------------------------------ draining ---------------------------------------------+
          Revoke (drop our finalizer, delete)      meanwhile the grantee stops work there, removes
          once the grantee annotated `released`,   its own finalizers, then annotates `released`;
          or when the grace period ran out         our finalizer keeps its access until then

The grace period bounds the wait on a grantee that is down, so a namespace never stays Terminating because of
us; the finalizer on the grant keeps the grantee's access while a terminating namespace is cleaned up. In a
terminating namespace where other finalizers still hold content, the grace period does not revoke: the
grantee may need this very grant to remove its own finalizers once it is back.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from discovery import bindings, constants, policy

READY: Final = "Ready"
SELECTORS_VALID: Final = "SelectorsValid"
# How many names a condition message lists before it says "and N more".
_MESSAGE_NAMES: Final = 5


class Phase(enum.StrEnum):
    ABSENT = "Absent"
    PENDING = "Pending"
    MEMBER = "Member"
    DRAINING = "Draining"


class ActionKind(enum.StrEnum):
    """Writes the plan asks for; see `Action` for what each one sends."""

    CREATE = "Create"
    RECREATE = "Recreate"
    REPAIR = "Repair"
    RESTORE = "Restore"
    MARK_DRAINING = "MarkDraining"
    REVOKE = "Revoke"


class ConditionReason(enum.StrEnum):
    CONVERGED = "Converged"
    GRANTS_PENDING = "GrantsPending"
    DRAINING = "Draining"
    GRANT_CONFLICT = "GrantConflict"
    SELECTORS_VALID = "SelectorsValid"
    INVALID_SELECTOR = policy.Reason.INVALID_SELECTOR.value


@dataclasses.dataclass(frozen=True)
class Action:
    """One write on one RoleBinding (`namespace`/`name`), with a sentence for the log line and the Event.

    - Create: POST `body`.
    - Repair, Restore, MarkDraining: PUT `body` (the observed object, our fields set, resourceVersion kept).
    - Revoke: PUT `release` when set (drops our finalizer), then DELETE with precondition `uid`.
    - Recreate: as Revoke, then POST `body` (roleRef is immutable; a binding being deleted cannot be kept).
    A 404 on DELETE means done; a 409 means the world moved: gather again and decide again.
    """

    kind: ActionKind
    namespace: str
    name: str
    message: str
    body: bindings.Manifest | None = dataclasses.field(default=None, hash=False)
    release: bindings.Manifest | None = dataclasses.field(default=None, hash=False)
    uid: str | None = None


@dataclasses.dataclass(frozen=True)
class Conflict:
    """A RoleBinding with our name that is not ours: never touched; the namespace stays pending."""

    namespace: str
    name: str
    message: str


@dataclasses.dataclass(frozen=True)
class Membership:
    """The published sets, each sorted: where the grantee may act, where it waits, where it must let go."""

    members: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    draining: tuple[str, ...] = ()

    def phase(self, namespace: str) -> Phase:
        if namespace in self.members:
            return Phase.MEMBER
        if namespace in self.pending:
            return Phase.PENDING
        if namespace in self.draining:
            return Phase.DRAINING
        return Phase.ABSENT


@dataclasses.dataclass(frozen=True)
class Observed:
    """The gathered state of the world: every namespace, and RoleBindings that are ours or carry our name.

    Gather them with `bindings.managed_selector(owner)` (cluster-wide) plus `metadata.name=<grant name>`
    (to see conflicts). Extra RoleBindings are harmless (ignored), so a wider list is fine.
    """

    namespaces: tuple[policy.NamespaceInfo, ...] = ()
    rolebindings: tuple[bindings.Manifest, ...] = dataclasses.field(default=(), hash=False)

    @classmethod
    def from_manifests(
        cls, *, namespaces: Iterable[Mapping[str, Any]], rolebindings: Iterable[Mapping[str, Any]]
    ) -> Observed:
        return cls(
            namespaces=tuple(policy.NamespaceInfo.from_manifest(item) for item in namespaces),
            rolebindings=tuple(dict(item) for item in rolebindings),
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to write, in order (grants before draining marks before revokes), and what to publish.

    `requeue_after` is when a grace period runs out (None: nothing is waiting on the clock); the controller
    wakes up then even if no event arrives. `status` is the JSON-ready `status` of the custom resource.
    """

    actions: tuple[Action, ...]
    membership: Membership
    decisions: Mapping[str, policy.Decision] = dataclasses.field(hash=False)
    conflicts: tuple[Conflict, ...]
    requeue_after: timedelta | None
    status: dict[str, Any] = dataclasses.field(hash=False)


def decide_plan(
    selection: policy.SelectorPolicy,
    observed: Observed,
    *,
    template: bindings.GrantTemplate,
    now: datetime,
    grace: timedelta,
    generation: int = 0,
    previous_conditions: Iterable[Mapping[str, Any]] = (),
    traceparent: str | None = None,
) -> Plan:
    """Decide membership and the writes that move the observed grants towards it. Never raises.

    `previous_conditions` (the stored `status.conditions`) keeps each condition's lastTransitionTime while
    its status is unchanged: a converged world yields an identical status and the controller writes nothing.
    `traceparent` is put on the grants this plan writes.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    decisions = selection.decide_all(observed.namespaces)
    desired = policy.members_of(decisions)
    ours: dict[str, list[bindings.Manifest]] = {}
    conflicts: list[Conflict] = []
    for rolebinding in observed.rolebindings:
        metadata = rolebinding.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        if bindings.is_managed(rolebinding, owner=template.owner):
            ours.setdefault(namespace, []).append(rolebinding)
        elif name == template.name and namespace in desired:
            conflicts.append(
                Conflict(
                    namespace,
                    name,
                    f"RoleBinding {namespace}/{name} exists but is not managed by discovery owner "
                    f"{template.owner}; leaving it alone, the namespace stays pending",
                )
            )
    conflicted = {conflict.namespace for conflict in conflicts}
    infos = {info.name: info for info in observed.namespaces}
    context = _Context(template=template, now=now, grace=grace, traceparent=traceparent)
    phases: dict[str, Phase] = {}
    for namespace in sorted(desired | ours.keys()):
        found = sorted(ours.get(namespace, []), key=_name_of)
        if namespace in desired:
            phases[namespace] = _plan_member(
                namespace, found, conflicted=namespace in conflicted, ctx=context
            )
        else:
            info = infos.get(namespace)
            # Others' finalizers still hold content in a terminating namespace: the grantee may need this
            # very grant to remove its own, so the grace period does not revoke it (the release still does).
            held = bool(
                info is not None
                and info.terminating
                and info.finalizers_remaining - {constants.GRANT_FINALIZER}
            )
            phases[namespace] = _plan_leaving(namespace, found, ctx=context, held=held)
    membership = Membership(
        members=tuple(name for name, phase in phases.items() if phase is Phase.MEMBER),
        pending=tuple(name for name, phase in phases.items() if phase is Phase.PENDING),
        draining=tuple(name for name, phase in phases.items() if phase is Phase.DRAINING),
    )
    status = build_status(
        membership,
        selection=selection,
        conflicts=conflicts,
        generation=generation,
        now=now,
        previous_conditions=previous_conditions,
    )
    rank = {kind: position for position, kind in enumerate(ActionKind)}
    actions = sorted(context.actions, key=lambda action: (rank[action.kind], action.namespace, action.name))
    return Plan(
        actions=tuple(actions),
        membership=membership,
        decisions=decisions,
        conflicts=tuple(conflicts),
        requeue_after=min(context.timers, default=None),
        status=status,
    )


def build_status(
    membership: Membership,
    *,
    selection: policy.SelectorPolicy,
    conflicts: Iterable[Conflict] = (),
    generation: int,
    now: datetime,
    previous_conditions: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The custom resource's `status`: sorted name lists, counts, Ready and SelectorsValid conditions."""
    conflicts = tuple(conflicts)
    if conflicts:
        ready = ("False", ConditionReason.GRANT_CONFLICT, "; ".join(item.message for item in conflicts))
    elif membership.pending:
        ready = (
            "False",
            ConditionReason.GRANTS_PENDING,
            f"waiting for grants in {_names(membership.pending)}",
        )
    elif membership.draining:
        ready = ("False", ConditionReason.DRAINING, f"waiting for release of {_names(membership.draining)}")
    else:
        ready = ("True", ConditionReason.CONVERGED, f"granted in {len(membership.members)} member namespaces")
    invalid = selection.invalid_selectors
    if invalid:
        valid = ("False", ConditionReason.INVALID_SELECTOR, "; ".join(item.message for item in invalid))
    elif selection.selectors:
        count = len(selection.selectors)
        valid = ("True", ConditionReason.SELECTORS_VALID, f"{count} selector{'s' if count > 1 else ''} valid")
    else:
        valid = ("True", ConditionReason.SELECTORS_VALID, "no selectors: only spec.namespaces selects")
    previous = {str(item.get("type")): item for item in previous_conditions}
    conditions = [
        _condition(kind, *values, generation=generation, now=now, previous=previous.get(kind))
        for kind, values in ((READY, ready), (SELECTORS_VALID, valid))
    ]
    return {
        "observedGeneration": generation,
        "members": list(membership.members),
        "pending": list(membership.pending),
        "draining": list(membership.draining),
        "memberCount": len(membership.members),
        "pendingCount": len(membership.pending),
        "drainingCount": len(membership.draining),
        "conditions": conditions,
    }


@dataclasses.dataclass
class _Context:
    """Per-plan scratch space: fixed inputs plus the actions and timers collected so far."""

    template: bindings.GrantTemplate
    now: datetime
    grace: timedelta
    traceparent: str | None
    actions: list[Action] = dataclasses.field(default_factory=list)
    timers: list[timedelta] = dataclasses.field(default_factory=list)

    def add(
        self,
        kind: ActionKind,
        rolebinding: Mapping[str, Any] | None,
        namespace: str,
        message: str,
        *,
        body: bindings.Manifest | None = None,
    ) -> None:
        release = uid = None
        name = self.template.name
        if rolebinding is not None:
            name = _name_of(rolebinding)
            if kind in (ActionKind.REVOKE, ActionKind.RECREATE):
                release = bindings.build_release(rolebinding)
                uid = (rolebinding.get("metadata") or {}).get("uid")
        self.actions.append(Action(kind, namespace, name, message, body=body, release=release, uid=uid))


def _plan_member(namespace: str, found: list[bindings.Manifest], *, conflicted: bool, ctx: _Context) -> Phase:
    template = ctx.template
    if conflicted:
        return Phase.PENDING
    primary = next((item for item in found if _name_of(item) == template.name), None)
    fresh = bindings.build_grant(namespace, template=template, traceparent=ctx.traceparent)
    phase = Phase.PENDING
    if primary is None:
        ctx.add(ActionKind.CREATE, None, namespace, "selected: granting", body=fresh)
    elif bindings.is_deleting(primary) or "roleRef" in bindings.access_drift(primary, template=template):
        why = "being deleted" if bindings.is_deleting(primary) else "roleRef differs (immutable)"
        ctx.add(ActionKind.RECREATE, primary, namespace, f"grant {why}: recreating", body=fresh)
    elif drift := bindings.access_drift(primary, template=template):
        ctx.add(
            ActionKind.REPAIR,
            primary,
            namespace,
            f"grant drifted ({', '.join(drift)}): repairing",
            body=_update(primary, ctx, draining_since=None),
        )
    else:
        phase = Phase.MEMBER
        if bindings.draining_since(primary) is not None:
            ctx.add(
                ActionKind.RESTORE,
                primary,
                namespace,
                "selected again while draining: restoring",
                body=_update(primary, ctx, draining_since=None),
            )
        elif drift := bindings.metadata_drift(primary, template=template, draining=False):
            ctx.add(
                ActionKind.REPAIR,
                primary,
                namespace,
                f"grant drifted ({', '.join(drift)}): repairing",
                body=_update(primary, ctx, draining_since=None),
            )
    # Bindings of ours under another name (the configured name changed) go once the current one works.
    if phase is Phase.MEMBER:
        for extra in found:
            if extra is not primary:
                ctx.add(ActionKind.REVOKE, extra, namespace, f"superseded by RoleBinding {template.name}")
    return phase


def _plan_leaving(
    namespace: str, found: list[bindings.Manifest], *, ctx: _Context, held: bool = False
) -> Phase:
    remaining = False
    for rolebinding in found:
        if "roleRef" in bindings.access_drift(rolebinding, template=ctx.template):
            # Not a grant of our ClusterRole (roleRef is immutable), so the grantee never served through it
            # and has nothing to release; annotating it would also need `bind` on that other role (403).
            # Dropping our finalizer and deleting need no such permission.
            ctx.add(
                ActionKind.REVOKE, rolebinding, namespace, "roleRef is not the granted ClusterRole: revoking"
            )
            continue
        since = bindings.parse_time(bindings.draining_since(rolebinding))
        if since is None or since > ctx.now:
            # Not marked yet (or a mark from the future, which would stretch the grace period): mark now.
            ctx.add(
                ActionKind.MARK_DRAINING,
                rolebinding,
                namespace,
                "left the member set: draining",
                body=_update(rolebinding, ctx, draining_since=ctx.now),
            )
            ctx.timers.append(ctx.grace)
            remaining = True
        elif bindings.is_released(rolebinding):
            ctx.add(ActionKind.REVOKE, rolebinding, namespace, "released by the grantee: revoking")
        elif held:
            remaining = True  # no timer: the namespace's own updates wake the controller
        elif ctx.now - since >= ctx.grace:
            seconds = ctx.grace.total_seconds()
            ctx.add(
                ActionKind.REVOKE,
                rolebinding,
                namespace,
                f"not released within the {seconds:g}s grace period: revoking",
            )
        else:
            ctx.timers.append(since + ctx.grace - ctx.now)
            remaining = True
    return Phase.DRAINING if remaining else Phase.ABSENT


def _update(
    rolebinding: Mapping[str, Any], ctx: _Context, *, draining_since: datetime | None
) -> bindings.Manifest:
    return bindings.build_update(
        rolebinding, template=ctx.template, draining_since=draining_since, traceparent=ctx.traceparent
    )


def _condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    since = bindings.format_time(now)
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        since = str(previous["lastTransitionTime"])
    return {
        "type": kind,
        "status": status,
        "reason": str(reason),
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_MESSAGE_NAMES])
    more = len(names) - _MESSAGE_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _name_of(rolebinding: Mapping[str, Any]) -> str:
    return str((rolebinding.get("metadata") or {}).get("name", ""))

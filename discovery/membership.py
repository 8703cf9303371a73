"""Membership lifecycle: from decisions and the observed grants to a plan of writes and the published status.

Pure: no I/O; time arrives as `now`. Each namespace is planned from its own objects alone (`plan_namespace`);
`decide_plan` plans them all, `Planner` keeps the per-namespace plans and re-plans only the namespaces that
changed (the controller uses it; a property test holds it equal to `decide_plan`). The controller gathers an
`Observed` (namespaces and RoleBindings), hands `plan.actions` to the one writer (`grants.py`), then
publishes `plan.status` when it differs from what is stored. Only RoleBindings labelled as managed by
discovery *and* by this owner are ever the subject of an action; any other RoleBinding, even one with our
name, is reported as a conflict and left alone.

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

import bisect
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
    `replanned` names the namespaces decided afresh for this plan (None: all of them); it is bookkeeping for
    the caller's logs and spans, not part of the plan's meaning, so it is left out of equality.
    """

    actions: tuple[Action, ...]
    membership: Membership
    decisions: Mapping[str, policy.Decision] = dataclasses.field(hash=False)
    conflicts: tuple[Conflict, ...]
    requeue_after: timedelta | None
    status: dict[str, Any] = dataclasses.field(hash=False)
    replanned: frozenset[str] | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class NamespacePlan:
    """One namespace's share of a plan; a plan is exactly the union of these over every namespace.

    `decision` is None for a name that is neither an observed namespace nor in the static list (it only
    holds bindings of ours). `deadline` is when the earliest grace period of its draining grants runs out.
    """

    name: str
    decision: policy.Decision | None
    phase: Phase
    actions: tuple[Action, ...] = ()
    conflict: Conflict | None = None
    deadline: datetime | None = None

    @property
    def empty(self) -> bool:
        """Nothing to remember: no decision, no grant, nothing to write, nothing waiting."""
        return self.decision is None and self.phase is Phase.ABSENT and not self.actions


def plan_namespace(
    name: str,
    info: policy.NamespaceInfo | None,
    rolebindings: Iterable[bindings.Manifest],
    *,
    selection: policy.SelectorPolicy,
    template: bindings.GrantTemplate,
    now: datetime,
    grace: timedelta,
    traceparent: str | None = None,
) -> NamespacePlan:
    """Decide one namespace from what was observed of it alone: its Namespace (None when not observed)
    and the RoleBindings in it that are ours or carry our name. Depends on nothing else in the cluster,
    which is what lets `Planner` re-plan only the namespaces whose objects changed.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if info is None and name in selection.static:
        info = policy.NamespaceInfo(name, exists=False)
    decision = selection.decide(info) if info is not None else None
    ours: list[bindings.Manifest] = []
    foreign = False
    for rolebinding in rolebindings:
        if bindings.is_managed(rolebinding, owner=template.owner):
            ours.append(rolebinding)
        elif _name_of(rolebinding) == template.name:
            foreign = True
    ours.sort(key=_name_of)
    context = _Context(template=template, now=now, grace=grace, traceparent=traceparent)
    conflict = None
    if decision is not None and decision.member:
        if foreign:
            conflict = Conflict(
                name,
                template.name,
                f"RoleBinding {name}/{template.name} exists but is not managed by discovery owner "
                f"{template.owner}; leaving it alone, the namespace stays pending",
            )
        phase = _plan_member(name, ours, conflicted=conflict is not None, ctx=context)
    elif ours:
        # Others' finalizers still hold content in a terminating namespace: the grantee may need this
        # very grant to remove its own, so the grace period does not revoke it (the release still does).
        held = bool(
            info is not None and info.terminating and info.finalizers_remaining - {constants.GRANT_FINALIZER}
        )
        phase = _plan_leaving(name, ours, ctx=context, held=held)
    else:
        phase = Phase.ABSENT
    return NamespacePlan(
        name,
        decision,
        phase,
        actions=tuple(context.actions),
        conflict=conflict,
        deadline=min(context.deadlines, default=None),
    )


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

    Every namespace is planned afresh; `Planner` is the incremental form (and must always agree with this).
    `previous_conditions` (the stored `status.conditions`) keeps each condition's lastTransitionTime while
    its status is unchanged: a converged world yields an identical status and the controller writes nothing.
    `traceparent` is put on the grants this plan writes.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    infos, found = _by_namespace(observed)
    plans = [
        plan_namespace(
            name,
            infos.get(name),
            found.get(name, ()),
            selection=selection,
            template=template,
            now=now,
            grace=grace,
            traceparent=traceparent,
        )
        for name in sorted(infos.keys() | found.keys() | selection.static)
    ]
    membership = Membership(
        members=tuple(item.name for item in plans if item.phase is Phase.MEMBER),
        pending=tuple(item.name for item in plans if item.phase is Phase.PENDING),
        draining=tuple(item.name for item in plans if item.phase is Phase.DRAINING),
    )
    conflicts = tuple(item.conflict for item in plans if item.conflict is not None)
    deadlines = [item.deadline for item in plans if item.deadline is not None]
    return Plan(
        actions=_ordered(action for item in plans for action in item.actions),
        membership=membership,
        decisions={item.name: item.decision for item in plans if item.decision is not None},
        conflicts=conflicts,
        requeue_after=min(deadlines) - now if deadlines else None,
        status=build_status(
            membership,
            selection=selection,
            conflicts=conflicts,
            generation=generation,
            now=now,
            previous_conditions=previous_conditions,
        ),
    )


class Planner:
    """`decide_plan`, incrementally: keeps every namespace's plan and re-plans only the names it is given.

    Pure: no I/O, time arrives as `now`. The caller (the controller) tracks which names changed since the
    last plan (a Namespace event names itself, a RoleBinding event its namespace) and passes an `Observed`
    holding at least those namespaces and their bindings; `names=None` re-plans everything observed (the
    first pass, a periodic resync). A different `selection` (the spec changed) needs everything: see
    `needs_all`. Names whose last plan had writes, or whose grace deadline passed, must be re-planned too:
    see `due`. Promise, checked by a property test over random histories: the plan equals `decide_plan` on
    the whole world. The cost of a plan is the names re-planned plus sorting the published name lists.
    """

    def __init__(self, *, template: bindings.GrantTemplate, grace: timedelta) -> None:
        self.template = template
        self.grace = grace
        self._selection: policy.SelectorPolicy | None = None
        self._plans: dict[str, NamespacePlan] = {}
        self._decisions: dict[str, policy.Decision] = {}
        # Names per published phase, each kept sorted (bisect), so publishing needs no sort.
        self._phases: dict[Phase, list[str]] = {phase: [] for phase in Phase if phase is not Phase.ABSENT}
        self._acting: dict[str, tuple[Action, ...]] = {}
        self._conflicts: dict[str, Conflict] = {}
        self._deadlines: dict[str, datetime] = {}
        self._membership: Membership | None = None

    def needs_all(self, selection: policy.SelectorPolicy) -> bool:
        """True when the next plan must see every namespace: never planned, or the selection changed."""
        return self._selection is None or selection != self._selection

    def due(self, now: datetime) -> set[str]:
        """Names to re-plan whatever happened: their last plan had writes, or a grace deadline passed."""
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        due = set(self._acting)
        due.update(name for name, deadline in self._deadlines.items() if deadline <= now)
        return due

    def plan(
        self,
        selection: policy.SelectorPolicy,
        observed: Observed,
        *,
        names: Iterable[str] | None,
        now: datetime,
        generation: int = 0,
        previous_conditions: Iterable[Mapping[str, Any]] = (),
    ) -> Plan:
        """Re-plan `names` (None: everything in `observed`) from `observed`, keep the rest, and assemble.

        `observed` must hold every namespace of `names` that exists and all their bindings: a name left
        out of it is planned as gone. Raises ValueError when `names` is partial but the selection changed
        or a `due` name is missing (the plan would silently be stale).
        """
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        infos, found = _by_namespace(observed)
        if names is None:
            self._reset(selection)
            replanned = set(infos.keys() | found.keys() | selection.static)
        else:
            if self.needs_all(selection):
                raise ValueError("planner: the selection changed, so every namespace must be re-planned")
            replanned = set(names)
            missing = self.due(now) - replanned
            if missing:
                raise ValueError(f"planner: due namespaces not re-planned: {sorted(missing)[:5]}")
        for name in replanned:
            self._put(
                plan_namespace(
                    name,
                    infos.get(name),
                    found.get(name, ()),
                    selection=selection,
                    template=self.template,
                    now=now,
                    grace=self.grace,
                )
            )
        if self._membership is None:
            self._membership = Membership(
                members=tuple(self._phases[Phase.MEMBER]),
                pending=tuple(self._phases[Phase.PENDING]),
                draining=tuple(self._phases[Phase.DRAINING]),
            )
        conflicts = tuple(self._conflicts[name] for name in sorted(self._conflicts))
        return Plan(
            actions=_ordered(action for actions in self._acting.values() for action in actions),
            membership=self._membership,
            decisions=dict(self._decisions),
            conflicts=conflicts,
            requeue_after=min(self._deadlines.values()) - now if self._deadlines else None,
            status=build_status(
                self._membership,
                selection=selection,
                conflicts=conflicts,
                generation=generation,
                now=now,
                previous_conditions=previous_conditions,
            ),
            replanned=None if names is None else frozenset(replanned),
        )

    def _reset(self, selection: policy.SelectorPolicy) -> None:
        self._selection = selection
        self._plans.clear()
        self._decisions.clear()
        for names in self._phases.values():
            names.clear()
        self._acting.clear()
        self._conflicts.clear()
        self._deadlines.clear()
        self._membership = None

    def _put(self, plan: NamespacePlan) -> None:
        """Replace one namespace's plan, keeping every index in step with `_plans`."""
        name = plan.name
        before = self._plans.pop(name, None)
        if before is not None and before.phase is not plan.phase:
            if before.phase is not Phase.ABSENT:
                names = self._phases[before.phase]
                del names[bisect.bisect_left(names, name)]
            self._membership = None
        if plan.phase is not Phase.ABSENT and (before is None or before.phase is not plan.phase):
            bisect.insort(self._phases[plan.phase], name)
            self._membership = None
        _set(self._decisions, name, plan.decision)
        _set(self._acting, name, plan.actions or None)
        _set(self._conflicts, name, plan.conflict)
        _set(self._deadlines, name, plan.deadline)
        if not plan.empty:
            self._plans[name] = plan


def _set(index: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        index.pop(name, None)
    else:
        index[name] = value


def _by_namespace(
    observed: Observed,
) -> tuple[dict[str, policy.NamespaceInfo], dict[str, list[bindings.Manifest]]]:
    infos = {info.name: info for info in observed.namespaces}
    found: dict[str, list[bindings.Manifest]] = {}
    for rolebinding in observed.rolebindings:
        namespace = str((rolebinding.get("metadata") or {}).get("namespace", ""))
        found.setdefault(namespace, []).append(rolebinding)
    return infos, found


_RANK: Final = {kind: position for position, kind in enumerate(ActionKind)}


def _ordered(actions: Iterable[Action]) -> tuple[Action, ...]:
    return tuple(sorted(actions, key=lambda action: (_RANK[action.kind], action.namespace, action.name)))


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
    """Per-namespace scratch space: fixed inputs plus the actions and grace deadlines collected so far."""

    template: bindings.GrantTemplate
    now: datetime
    grace: timedelta
    traceparent: str | None
    actions: list[Action] = dataclasses.field(default_factory=list)
    deadlines: list[datetime] = dataclasses.field(default_factory=list)

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
            ctx.deadlines.append(ctx.now + ctx.grace)
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
            ctx.deadlines.append(since + ctx.grace)
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

"""The discovery process: watch, then converge, one pass at a time: gather -> plan -> grant -> publish.

Four informers feed one cache: every Namespace (cluster-wide, unfiltered, so a DELETED event always means
the namespace is gone, never "it lost its label"), the RoleBindings this owner manages (label selector),
the RoleBindings that carry the grant's name (field selector; a foreign one is a conflict, never touched)
and the NamespaceDiscovery object itself (field selector on its name). An event only marks names dirty (a
Namespace its name, a RoleBinding its namespace; the echo of discovery's own write marks nothing) and wakes
one serialized pass: gather the dirty namespaces from the caches, re-plan only those with
`membership.Planner` (every namespace on the first pass, when the spec changes and every `FULL_RESYNC` as a
safety net), hand the writes to `grants` (the only writer) and confirm them in the same pass, then leave
status and Events to a publisher task, which writes them after the grants, coalesced, without ever delaying
the next pass. A timer wakes the pass at the next grace deadline. The first pass runs only after every
informer has listed, so a restart sees the whole picture. Every step is idempotent; a crash anywhere is
repaired by the next pass. Called by `discovery.run` (the CLI, the demo, the integration tests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pydantic
from opentelemetry import context as otel_context
from opentelemetry import trace

from discovery import config as discovery_config
from discovery import grants, informer, kube, membership, models, policy

log = logging.getLogger(__name__)

Key = tuple[str, str]
# Non-member reasons that say nothing about the namespace itself: moving between them (a selector becoming
# invalid, say) is not worth a span and a log line for every namespace in the cluster.
_QUIET: Final = frozenset(
    {policy.Reason.NOT_SELECTED, policy.Reason.INVALID_SELECTOR, policy.Reason.NOT_FOUND}
)
# A namespace never seen before counts as quietly not selected: only a real change opens a decision span.
_BASELINE: Final = (False, "quiet")
# Slack added to grace wake-ups, so the pass that wakes finds the deadline passed.
_TIMER_SLACK: Final = 0.05
_MAX_BACKOFF: Final = 30.0
FULL_RESYNC: Final = timedelta(minutes=5)
"""How often a pass re-plans every namespace whatever the events said (a safety net against drift)."""
# Rounds of plan-then-write in one pass: a grant just created is confirmed (pending -> member) by the next
# round, and a binding it supersedes revoked by the one after; anything later waits for the next pass.
_ROUNDS: Final = 3


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(frozen=True)
class Context:
    """The collaborators of one controller; tests pass fakes (an API double, a fixed clock, a tracer)."""

    api: kube.Api
    config: discovery_config.Config
    tracer: trace.Tracer = dataclasses.field(default_factory=lambda: trace.get_tracer("discovery"))
    clock: Callable[[], datetime] = _utcnow
    observer: grants.Observer | None = None
    full_resync: timedelta = FULL_RESYNC


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one pass sees: the custom resource (None when missing), Namespaces and relevant RoleBindings.

    `names` None: every namespace and binding (a complete picture). Otherwise only these namespaces (those
    that exist) and all their bindings: the pass re-plans just them and keeps its plan for the rest.
    """

    discovery: kube.Body | None
    namespaces: tuple[kube.Body, ...] = ()
    rolebindings: tuple[kube.Body, ...] = ()
    names: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True)
class Result:
    """How a pass ended: when to wake up again (grace deadline), whether to retry soon, the plan used."""

    requeue_after: timedelta | None = None
    retry: bool = False
    plan: membership.Plan | None = None
    held: str = ""
    """Why nothing was decided (the custom resource is missing or invalid); empty when a plan ran."""


class Controller:
    """One NamespaceDiscovery object, served. Use `run(stop)`; tests may call `converge(snapshot)`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        config = ctx.config
        self.grants = grants.Grants(
            ctx.api, config=config, tracer=ctx.tracer, clock=ctx.clock, observer=ctx.observer
        )
        self.planner = membership.Planner(template=config.template, grace=config.grace)
        # Passes, plans and namespaces planned so far (the benchmarks and tests read them).
        self.stats: collections.Counter[str] = collections.Counter()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        # Namespaces whose objects changed since the last pass; None as resync time: re-plan everything.
        self._dirty: set[str] = set()
        self._resync_at: float | None = None
        # Names of our bindings per namespace, as the managed informer holds them (its cache has no index).
        self._managed_names: dict[str, set[str]] = {}
        # The last spec seen and what it compiled to (a SelectorPolicy, or why it is invalid).
        self._spec: tuple[dict[str, Any], policy.SelectorPolicy | str] | None = None
        # Last decision per namespace (bounded by observed namespaces) and the span context of the decision
        # a namespace's writes belong to, kept until its grant settles (bounded likewise).
        self._decisions: dict[str, tuple[bool, str]] = {}
        self._primed = False
        self._parents: dict[str, otel_context.Context] = {}
        # Our own writes, until the informers catch up: the object written, or the uid of one deleted.
        self._written: dict[Key, kube.Body] = {}
        self._deleted: dict[Key, str] = {}
        self._written_discovery: kube.Body | None = None
        # Bindings being written right now, and the latest event about each that arrived meanwhile.
        self._writing: set[Key] = set()
        self._held: dict[Key, tuple[informer.EventType, kube.Body]] = {}
        # What the publisher writes next: the latest plan's status (with the object it was planned from),
        # then the Events queued since (bounded by the writes of the passes in between).
        self._unpublished: tuple[kube.Body, membership.Plan] | None = None
        self._announcements: list[Callable[[], Awaitable[None]]] = []
        self._publish_wake = asyncio.Event()
        # What was last reported as a Warning, so each problem is posted once (bounded: one entry per topic).
        self._reported: dict[str, str] = {}
        self._conflicts: frozenset[Key] = frozenset()
        self.namespaces = informer.Informer(ctx.api, kube.NAMESPACES, handler=self._on_namespace)
        self.managed = informer.Informer(
            ctx.api, kube.ROLEBINDINGS, handler=self._on_managed, label_selector=config.managed_selector
        )
        self.named = informer.Informer(
            ctx.api,
            kube.ROLEBINDINGS,
            handler=self._on_binding,
            field_selector=f"metadata.name={config.rolebinding_name}",
        )
        self.discovery = informer.Informer(
            ctx.api,
            config.resource,
            handler=self._on_discovery,
            field_selector=f"metadata.name={config.name}",
        )

    @property
    def informers(self) -> tuple[informer.Informer, ...]:
        return (self.namespaces, self.managed, self.named, self.discovery)

    @property
    def synced(self) -> bool:
        return all(item.synced.is_set() for item in self.informers)

    # -- events: only mark what changed and wake the pass -------------------------------------------

    def _on_namespace(self, event: informer.EventType, obj: kube.Body) -> None:
        self._mark(informer.key_of(obj)[1])

    def _on_managed(self, event: informer.EventType, obj: kube.Body) -> None:
        namespace, name = informer.key_of(obj)
        if event == "DELETED":
            names = self._managed_names.get(namespace)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._managed_names[namespace]
        else:
            self._managed_names.setdefault(namespace, set()).add(name)
        self._on_binding(event, obj)

    def _on_binding(self, event: informer.EventType, obj: kube.Body) -> None:
        key = informer.key_of(obj)
        if key in self._writing:
            # Our write there is still waiting for its answer, which tells whether this is its echo.
            self._held[key] = (event, obj)
            return
        written = self._written.get(key)
        if event != "DELETED" and written is not None and _version(written) == _version(obj) >= 0:
            # The echo of our own write: its namespace was planned with exactly this object already.
            if all(_caught_up(cache.get(key[1], namespace=key[0]), written) for cache in self._holders(key)):
                del self._written[key]
            return
        if self._deleted.get(key) == _uid(obj):
            # Our own delete (its finalizer removal, then the deletion): planned as gone already.
            if event == "DELETED" and all(
                cache.get(key[1], namespace=key[0]) is None for cache in self._holders(key)
            ):
                del self._deleted[key]
            return
        if event != "DELETED" and self._delivered_twice(key, obj):
            return
        self._mark(key[0])

    def _on_discovery(self, event: informer.EventType, obj: kube.Body) -> None:
        written = self._written_discovery
        if event != "DELETED" and written is not None and _version(written) == _version(obj) >= 0:
            return  # the echo of our own status write
        self._wake.set()  # the pass sees whether the spec changed (then it re-plans everything)

    def _mark(self, namespace: str) -> None:
        self._dirty.add(namespace)
        self._wake.set()

    def _delivered_twice(self, key: Key, obj: kube.Body) -> bool:
        """Both binding informers hold this very version: the other one's event has been handled already."""
        copies = [cache.get(key[1], namespace=key[0]) for cache in (self.managed, self.named)]
        return all(copy is not None and _version(copy) == _version(obj) >= 0 for copy in copies)

    def _holders(self, key: Key) -> tuple[informer.Informer, ...]:
        """The caches that hold our binding `key`: the managed one, and the named one for the grant's name."""
        if key[1] == self.ctx.config.rolebinding_name:
            return (self.managed, self.named)
        return (self.managed,)

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch, converge on every change, until `stop` is set. Never returns early."""
        tasks = [asyncio.create_task(item.run(), name=f"discovery {item!r}") for item in self.informers]
        stopping = asyncio.create_task(stop.wait())
        publisher: asyncio.Task[None] | None = None
        try:
            synced = asyncio.create_task(self._all_synced())
            await asyncio.wait([stopping, synced], return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            if stop.is_set():
                return
            log.info("discovery %s: caches synced, converging", self.ctx.config.name)
            publisher = asyncio.create_task(self._publishing(), name="discovery publisher")
            self._wake.set()
            failures = 0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                woken = asyncio.create_task(self._wake.wait())
                await asyncio.wait([stopping, woken], return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if stop.is_set():
                    break
                self._wake.clear()
                try:
                    now = self.ctx.clock()
                    result = await self._pass(self._gather(now), now=now)
                except Exception:  # the top-level loop: one bad pass must not end the process
                    log.exception("discovery pass failed; retrying")
                    result = Result(retry=True)
                    self._resync_at = None  # the plan kept may be half-updated: re-plan everything
                self._publish_wake.set()
                if result.requeue_after is not None:
                    self._schedule(result.requeue_after.total_seconds() + _TIMER_SLACK)
                if result.retry:
                    failures += 1
                    self._schedule(min(_MAX_BACKOFF, 0.05 * 2**failures))
                else:
                    failures = 0
                if self._resync_at is not None:
                    self._schedule(self._resync_at - loop.time())
        finally:
            if self._timer is not None:
                self._timer.cancel()
            stopping.cancel()
            for task in tasks:
                task.cancel()
            if publisher is not None:
                publisher.cancel()
                tasks.append(publisher)
            await asyncio.gather(*tasks, stopping, return_exceptions=True)

    async def _all_synced(self) -> None:
        for item in self.informers:
            await item.synced.wait()

    def _schedule(self, delay: float) -> None:
        """Wake up after `delay` seconds, unless an earlier wake-up is already pending."""
        loop = asyncio.get_running_loop()
        due = loop.time() + max(0.0, delay)
        if self._timer is not None and not self._timer.cancelled() and loop.time() < self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, delay), self._wake.set)
        self._timer_due = due

    async def _publishing(self) -> None:
        """The publisher task: status then Events whenever a pass asks, retrying with backoff on failure."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            try:
                published = await self._publish()
            except Exception:  # one bad publication must not end the publisher
                log.exception("publishing discovery status failed; retrying")
                published = False
            if published:
                failures = 0
            else:
                failures += 1
                loop.call_later(min(_MAX_BACKOFF, 0.05 * 2**failures), self._publish_wake.set)

    # -- gather -------------------------------------------------------------------------------------

    def _gather(self, now: datetime) -> Snapshot:
        """What the next pass must see: everything when a resync is due, else the dirty and due names."""
        clock = asyncio.get_running_loop().time()
        if self._resync_at is None or clock >= self._resync_at:
            self._resync_at = clock + self.ctx.full_resync.total_seconds()
            self._dirty.clear()
            return self.snapshot()
        names, self._dirty = self._dirty, set()
        names.update(self.planner.due(now))
        return self.snapshot(names)

    def snapshot(self, names: Collection[str] | None = None) -> Snapshot:
        """The caches (only `names`' namespaces and their bindings, when given), with our own recent writes
        laid over them until the watches deliver those writes."""
        config = self.ctx.config
        bodies: dict[Key, kube.Body] = {}
        if names is None:
            namespaces = tuple(self.namespaces.items())
            for cache in (self.managed, self.named):
                for body in cache.items():
                    key = informer.key_of(body)
                    bodies[key] = _newest(bodies.get(key), body)
        else:
            namespaces = tuple(
                found for name in sorted(names) if (found := self.namespaces.get(name)) is not None
            )
            for name in names:
                keys = [(name, item) for item in self._managed_names.get(name, ())]
                keys.append((name, config.rolebinding_name))
                for key in keys:
                    for cache in (self.managed, self.named):
                        found = cache.get(key[1], namespace=key[0])
                        if found is not None:
                            bodies[key] = _newest(bodies.get(key), found)
        for key, written in list(self._written.items()):
            if names is not None and key[0] not in names:
                continue
            seen = bodies.get(key)
            if seen is not None and _newer_or_same(seen, written):
                del self._written[key]  # the watch caught up
            else:
                bodies[key] = _newest(seen, written)
        for key, uid in list(self._deleted.items()):
            if names is not None and key[0] not in names:
                continue
            if key in bodies and _uid(bodies[key]) == uid:
                del bodies[key]  # deleted by us; the watch has not said so yet
            else:
                del self._deleted[key]
        return Snapshot(
            discovery=self._latest_discovery(self.discovery.get(config.name)),
            namespaces=namespaces,
            rolebindings=tuple(bodies[key] for key in sorted(bodies)),
            names=None if names is None else frozenset(names),
        )

    def _latest_discovery(self, seen: kube.Body | None) -> kube.Body | None:
        """`seen` (None: the object is gone), or our own later status write when the watch lags behind."""
        written = self._written_discovery
        if seen is None or written is None:
            return seen
        if _newer_or_same(seen, written):
            self._written_discovery = None
            return seen
        return written

    # -- plan, grant, publish -----------------------------------------------------------------------

    async def converge(self, snapshot: Snapshot) -> Result:
        """One pass over `snapshot`, then its status and Events published, in that order, before returning.

        A snapshot without `names` re-plans every namespace. Writes only what differs; a pass over a
        converged world writes nothing.
        """
        result = await self._pass(snapshot, now=self.ctx.clock())
        if not await self._publish():
            result = dataclasses.replace(result, retry=True)
        return result

    async def _pass(self, snapshot: Snapshot, *, now: datetime) -> Result:
        """Plan what `snapshot` covers, send the grants, confirm them; leaves status and Events queued."""
        config = self.ctx.config
        obj = snapshot.discovery
        if obj is None:
            self._unpublished = None
            return self._hold("missing", f"NamespaceDiscovery {config.name} not found; existing grants kept")
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        selection = self._compile(obj.get("spec") or {})
        if isinstance(selection, str):
            message = (
                f"spec of NamespaceDiscovery {config.name} is invalid, existing grants kept: {selection}"
            )
            if self._reported.get("spec") != f"{generation}":
                self._warn(obj, reason="InvalidSpec", message=message)
            self._reported["spec"] = f"{generation}"
            self._unpublished = None
            return self._hold("invalid", message)
        self._reported.pop("spec", None)
        self._reported.pop("hold", None)
        if snapshot.names is not None and self.planner.needs_all(selection):
            snapshot = self.snapshot()  # the spec changed: every namespace is decided again
        stored_status = obj.get("status") or {}
        by_name = {str((ns.get("metadata") or {}).get("name", "")): ns for ns in snapshot.namespaces}
        failed: set[str] = set()
        retry = False

        def replan(seen: Snapshot, names: Collection[str] | None) -> membership.Plan:
            plan = self.planner.plan(
                selection,
                membership.Observed.from_manifests(
                    namespaces=seen.namespaces, rolebindings=seen.rolebindings
                ),
                names=names,
                now=now,
                generation=generation,
                previous_conditions=stored_status.get("conditions") or (),
            )
            self.stats["full plans" if plan.replanned is None else "plans"] += 1
            self.stats["namespaces planned"] += len(
                plan.decisions if plan.replanned is None else plan.replanned
            )
            self._record_decisions(plan)
            return plan

        plan = replan(snapshot, snapshot.names)
        for _ in range(_ROUNDS):
            outcomes = []
            for action in plan.actions:
                if action.namespace in failed:
                    continue  # it failed earlier in this pass: the next pass retries, after a backoff
                key = (action.namespace, action.name)
                self._writing.add(key)
                try:
                    outcome = await self.grants.apply(
                        action,
                        decision=plan.decisions.get(action.namespace),
                        parent=self._parents.get(action.namespace),
                        involved=by_name.get(action.namespace),
                    )
                finally:
                    self._writing.discard(key)
                self._remember(outcome)
                if (held := self._held.pop(key, None)) is not None:
                    self._on_binding(*held)
                outcomes.append(outcome)
                if outcome.done:
                    self._announcements.append(functools.partial(self.grants.announce, outcome))
                else:
                    failed.add(action.namespace)
                    retry = True
            if not any(outcome.done for outcome in outcomes):
                break
            # Confirm what was just written, from the answers: a created grant makes its namespace a member
            # in the status this pass publishes, without waiting for the watch to bring the grant back
            # (whose echo then changes nothing and wakes no pass).
            snapshot = _with_outcomes(snapshot, outcomes)
            plan = replan(snapshot, self.planner.due(now))
        if any(action.namespace not in failed for action in plan.actions):
            self._wake.set()  # writes left after the last round (a chain of them): the next pass goes on
        self.stats["passes"] += 1
        busy = {action.namespace for action in plan.actions}
        busy.update(plan.membership.pending, plan.membership.draining)
        for name in list(self._parents):
            if name not in busy:
                del self._parents[name]
        self._report(obj, plan, stored_status)
        self._unpublished = (obj, plan)
        return Result(requeue_after=plan.requeue_after, retry=retry, plan=plan)

    def _compile(self, raw: dict[str, Any]) -> policy.SelectorPolicy | str:
        """The spec's SelectorPolicy, or why it is invalid; compiled again only when the spec changed."""
        if self._spec is not None and self._spec[0] == raw:
            return self._spec[1]
        compiled: policy.SelectorPolicy | str
        try:
            spec = models.NamespaceDiscoverySpec.model_validate(raw)
        except pydantic.ValidationError as error:
            compiled = str(error)
        else:
            compiled = policy.SelectorPolicy.from_spec(spec, protected=self.ctx.config.protected)
        self._spec = (copy.deepcopy(raw), compiled)
        return compiled

    async def _publish(self) -> bool:
        """Status first (the latest plan's, when it differs from what is stored), then the queued Events.

        False when the status could not be written.
        """
        published = True
        pending, self._unpublished = self._unpublished, None
        if pending is not None:
            obj, plan = pending
            for seen in (self.discovery.get(self.ctx.config.name), self._written_discovery):
                if seen is not None:
                    obj = _newest(obj, seen)  # compare with what is stored now, not at planning time
            try:
                written = await self.grants.publish_status(obj, plan.status)
            except kube.ApiError as error:
                log.warning("could not publish status of %s: %s", self.ctx.config.name, error)
                published = False
                # Retried later, unless a newer plan replaced it meanwhile or the object is gone.
                if self._unpublished is None and error.status != 404:
                    self._unpublished = pending
            else:
                if written is not None:
                    self._written_discovery = written
                    log.info(
                        "published membership: %d members, %d pending, %d draining",
                        len(plan.membership.members),
                        len(plan.membership.pending),
                        len(plan.membership.draining),
                        extra={
                            "members": list(plan.membership.members),
                            "pending": list(plan.membership.pending),
                            "draining": list(plan.membership.draining),
                        },
                    )
        announcements, self._announcements = self._announcements, []
        for announce in announcements:
            await announce()
        return published

    def _hold(self, topic: str, message: str) -> Result:
        if self._reported.get("hold") != topic:
            log.warning(message)
        self._reported["hold"] = topic
        return Result(held=message)

    def _record_decisions(self, plan: membership.Plan) -> None:
        """One `discovery.decide` span and one log line per namespace whose decision changed."""
        acting = {action.namespace for action in plan.actions}
        before = self._decisions
        if plan.replanned is None:
            names, self._decisions = sorted(plan.decisions), {}
        else:
            names = sorted(plan.replanned)
        for name in names:
            decision = plan.decisions.get(name)
            known = name in before
            previous = before.get(name, _BASELINE)
            if decision is None:
                self._decisions.pop(name, None)
                continue
            current = _significant(decision)
            self._decisions[name] = current
            if self._primed:
                # A namespace first seen with a write to do gets its span too: it explains the write.
                first_write = name in acting and not known
                if current == previous and not first_write:
                    continue
            elif name not in acting:
                # The first pass after a start: decisions that need no write did not change, as far as
                # anyone can tell (a restart of a converged discovery logs and traces nothing per namespace).
                continue
            with self.ctx.tracer.start_as_current_span(
                "discovery.decide",
                attributes={
                    "k8s.namespace.name": name,
                    "discovery.decision.member": decision.member,
                    "discovery.decision.reason": str(decision.reason),
                    "discovery.decision.message": decision.message,
                },
            ) as span:
                self._parents[name] = trace.set_span_in_context(span)
                log.info(
                    "namespace %s %s: %s",
                    name,
                    "selected" if decision.member else "not selected",
                    decision.message,
                    extra={
                        "namespace": name,
                        "member": decision.member,
                        "reason": str(decision.reason),
                    },
                )
        if not self._primed:
            self._primed = True
            members = sum(1 for decision in plan.decisions.values() if decision.member)
            log.info("first pass: %d namespaces observed, %d selected", len(plan.decisions), members)

    def _remember(self, outcome: grants.Outcome) -> None:
        key = (outcome.action.namespace, outcome.action.name)
        if outcome.deleted and outcome.action.uid:
            self._written.pop(key, None)
            self._deleted[key] = outcome.action.uid
        elif outcome.current is not None:
            self._deleted.pop(key, None)
            self._written[key] = outcome.current

    def _report(self, obj: kube.Body, plan: membership.Plan, stored: Mapping[str, Any]) -> None:
        """Warning Events, each once: an invalid selector (on the custom resource), a grant conflict."""
        valid = _condition(plan.status.get("conditions") or [], membership.SELECTORS_VALID)
        if valid.get("status") == "False":
            message = str(valid.get("message", ""))
            before = _condition(stored.get("conditions") or [], membership.SELECTORS_VALID)
            if before.get("message") != message and self._reported.get("selectors") != message:
                self._warn(obj, reason=str(policy.Reason.INVALID_SELECTOR), message=message)
            self._reported["selectors"] = message
        else:
            self._reported.pop("selectors", None)
        conflicts = frozenset((item.namespace, item.name) for item in plan.conflicts)
        for conflict in plan.conflicts:
            if (conflict.namespace, conflict.name) not in self._conflicts:
                log.warning(conflict.message, extra={"namespace": conflict.namespace})
                self._announcements.append(
                    functools.partial(
                        self.grants.post_event,
                        grants.namespace_reference(conflict.namespace),
                        reason="GrantConflict",
                        message=conflict.message,
                        warning=True,
                    )
                )
        self._conflicts = conflicts

    def _warn(self, obj: kube.Body, *, reason: str, message: str) -> None:
        """Log now; the Warning Event goes out with the next publication."""
        log.warning(message, extra={"reason": reason})
        resource = self.ctx.config.resource
        reference = grants.object_reference(obj, api_version=resource.api_version, kind=resource.kind)
        self._announcements.append(
            functools.partial(self.grants.post_event, reference, reason=reason, message=message, warning=True)
        )


def _with_outcomes(snapshot: Snapshot, outcomes: Iterable[grants.Outcome]) -> Snapshot:
    """`snapshot` with the answers of its writes laid over its bindings (what the watch will bring back)."""
    bodies = {informer.key_of(body): body for body in snapshot.rolebindings}
    for outcome in outcomes:
        key = (outcome.action.namespace, outcome.action.name)
        if outcome.deleted:
            bodies.pop(key, None)
        elif outcome.current is not None:
            bodies[key] = outcome.current
    return dataclasses.replace(snapshot, rolebindings=tuple(bodies[key] for key in sorted(bodies)))


async def run(
    config: discovery_config.Config,
    *,
    api: kube.Api | None = None,
    kubeconfig: str | None = None,
    stop: asyncio.Event | None = None,
    observer: grants.Observer | None = None,
) -> None:
    """Serve `config` until `stop` is set (forever when None).

    Uses `api` when given (the caller closes it), else connects with `kubeconfig`, or in-cluster when that
    is None too. Spans go to OpenTelemetry's global tracer provider.
    """
    own = api is None
    client = api if api is not None else await kube.Api.connect(kubeconfig=kubeconfig)
    try:
        controller = Controller(Context(api=client, config=config, observer=observer))
        await controller.run(stop or asyncio.Event())
    finally:
        if own:
            with contextlib.suppress(Exception):
                await client.close()


def _significant(decision: policy.Decision) -> tuple[bool, str]:
    if not decision.member and decision.reason in _QUIET:
        return _BASELINE
    return (decision.member, str(decision.reason))


def _condition(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    return next((item for item in conditions if item.get("type") == kind), {})


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _version(obj: Mapping[str, Any]) -> int:
    """resourceVersion as a number (etcd's are); -1 when it is not one, so such objects never win."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return -1


def _newer_or_same(seen: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    return _version(seen) >= _version(written) or _version(written) < 0


def _caught_up(seen: Mapping[str, Any] | None, written: Mapping[str, Any]) -> bool:
    return seen is not None and _newer_or_same(seen, written)


def _newest(current: kube.Body | None, candidate: kube.Body) -> kube.Body:
    if current is None or _version(candidate) > _version(current):
        return candidate
    return current

"""The discovery process: watch, then converge, one pass at a time: gather -> decide -> act -> publish.

Four informers feed one cache: every Namespace (cluster-wide, unfiltered, so a DELETED event always means
the namespace is gone, never "it lost its label"), the RoleBindings this owner manages (label selector),
the RoleBindings that carry the grant's name (field selector; a foreign one is a conflict, never touched)
and the NamespaceDiscovery object itself (field selector on its name). Any event wakes one serialized
`converge`: snapshot the caches, `membership.decide_plan`, hand each action to `grants` (the only writer),
publish status when it changed, and schedule a wake-up at the next grace deadline. The first pass runs only
after every informer has listed, so a restart sees the whole picture: it creates missing grants and drains
stale ones left while discovery was down. Every step is idempotent; a crash anywhere is repaired by the
next pass. Called by `discovery.run` (the CLI, the demo, the integration tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
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


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one pass sees: the custom resource (None when missing), every Namespace, relevant RoleBindings."""

    discovery: kube.Body | None
    namespaces: tuple[kube.Body, ...] = ()
    rolebindings: tuple[kube.Body, ...] = ()


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
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        # Last decision per namespace (bounded by observed namespaces) and the span context of the decision
        # a namespace's writes belong to, kept until its grant settles (bounded likewise).
        self._decisions: dict[str, tuple[bool, str]] = {}
        self._primed = False
        self._parents: dict[str, otel_context.Context] = {}
        # Our own writes, until the informers catch up: the object written, or the uid of one deleted.
        self._written: dict[Key, kube.Body] = {}
        self._deleted: dict[Key, str] = {}
        self._written_discovery: kube.Body | None = None
        # What was last reported as a Warning, so each problem is posted once (bounded: one entry per topic).
        self._reported: dict[str, str] = {}
        self._conflicts: frozenset[Key] = frozenset()
        self.namespaces = informer.Informer(ctx.api, kube.NAMESPACES, handler=self._on_event)
        self.managed = informer.Informer(
            ctx.api, kube.ROLEBINDINGS, handler=self._on_event, label_selector=config.managed_selector
        )
        self.named = informer.Informer(
            ctx.api,
            kube.ROLEBINDINGS,
            handler=self._on_event,
            field_selector=f"metadata.name={config.rolebinding_name}",
        )
        self.discovery = informer.Informer(
            ctx.api,
            config.resource,
            handler=self._on_event,
            field_selector=f"metadata.name={config.name}",
        )

    @property
    def informers(self) -> tuple[informer.Informer, ...]:
        return (self.namespaces, self.managed, self.named, self.discovery)

    @property
    def synced(self) -> bool:
        return all(item.synced.is_set() for item in self.informers)

    # -- events: only enqueue -----------------------------------------------------------------------

    def _on_event(self, event: informer.EventType, obj: kube.Body) -> None:
        """Any change anywhere wakes the one pass; the pass reads the caches, never the event."""
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch, converge on every change, until `stop` is set. Never returns early."""
        tasks = [asyncio.create_task(item.run(), name=f"discovery {item!r}") for item in self.informers]
        stopping = asyncio.create_task(stop.wait())
        try:
            synced = asyncio.create_task(self._all_synced())
            await asyncio.wait([stopping, synced], return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            if stop.is_set():
                return
            log.info("discovery %s: caches synced, converging", self.ctx.config.name)
            self._wake.set()
            failures = 0
            while not stop.is_set():
                woken = asyncio.create_task(self._wake.wait())
                await asyncio.wait([stopping, woken], return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if stop.is_set():
                    break
                self._wake.clear()
                try:
                    result = await self.converge(self.snapshot())
                except Exception:  # the top-level loop: one bad pass must not end the process
                    log.exception("discovery pass failed; retrying")
                    result = Result(retry=True)
                if result.requeue_after is not None:
                    self._schedule(result.requeue_after.total_seconds() + _TIMER_SLACK)
                if result.retry:
                    failures += 1
                    self._schedule(min(_MAX_BACKOFF, 0.05 * 2**failures))
                else:
                    failures = 0
        finally:
            if self._timer is not None:
                self._timer.cancel()
            stopping.cancel()
            for task in tasks:
                task.cancel()
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

    # -- gather -------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The caches, with our own recent writes laid over them until the watches deliver those writes."""
        bodies: dict[Key, kube.Body] = {}
        for cache in (self.managed, self.named):
            for body in cache.items():
                key = informer.key_of(body)
                bodies[key] = _newest(bodies.get(key), body)
        for key, written in list(self._written.items()):
            seen = bodies.get(key)
            if seen is not None and _newer_or_same(seen, written):
                del self._written[key]  # the watch caught up
            else:
                bodies[key] = _newest(seen, written)
        for key, uid in list(self._deleted.items()):
            if key in bodies and _uid(bodies[key]) == uid:
                del bodies[key]  # deleted by us; the watch has not said so yet
            else:
                del self._deleted[key]
        discovery = self.discovery.get(self.ctx.config.name)
        if self._written_discovery is not None:
            if discovery is not None and _newer_or_same(discovery, self._written_discovery):
                self._written_discovery = None
            elif discovery is not None:
                discovery = self._written_discovery
        return Snapshot(
            discovery=discovery,
            namespaces=tuple(self.namespaces.items()),
            rolebindings=tuple(bodies[key] for key in sorted(bodies)),
        )

    # -- decide, act, publish -----------------------------------------------------------------------

    async def converge(self, snapshot: Snapshot) -> Result:
        """One pass. Writes only what differs; a pass over a converged world writes nothing."""
        config = self.ctx.config
        obj = snapshot.discovery
        if obj is None:
            return self._hold("missing", f"NamespaceDiscovery {config.name} not found; existing grants kept")
        metadata = obj.get("metadata") or {}
        generation = int(metadata.get("generation") or 0)
        try:
            spec = models.NamespaceDiscoverySpec.model_validate(obj.get("spec") or {})
        except pydantic.ValidationError as error:
            message = f"spec of NamespaceDiscovery {config.name} is invalid, existing grants kept: {error}"
            if self._reported.get("spec") != f"{generation}":
                await self._warn(obj, reason="InvalidSpec", message=message)
            self._reported["spec"] = f"{generation}"
            return self._hold("invalid", message)
        self._reported.pop("spec", None)
        self._reported.pop("hold", None)
        now = self.ctx.clock()
        selection = policy.SelectorPolicy.from_spec(spec, protected=config.protected)
        observed = membership.Observed.from_manifests(
            namespaces=snapshot.namespaces, rolebindings=snapshot.rolebindings
        )
        stored_status = obj.get("status") or {}
        plan = membership.decide_plan(
            selection,
            observed,
            template=config.template,
            now=now,
            grace=config.grace,
            generation=generation,
            previous_conditions=stored_status.get("conditions") or (),
        )
        self._record_decisions(plan)
        by_name = {str((ns.get("metadata") or {}).get("name", "")): ns for ns in snapshot.namespaces}
        retry = False
        for action in plan.actions:
            outcome = await self.grants.apply(
                action,
                decision=plan.decisions.get(action.namespace),
                parent=self._parents.get(action.namespace),
                involved=by_name.get(action.namespace),
            )
            retry = retry or outcome.retry
            self._remember(outcome)
        busy = {action.namespace for action in plan.actions}
        busy.update(plan.membership.pending, plan.membership.draining)
        for name in list(self._parents):
            if name not in busy:
                del self._parents[name]
        await self._report(obj, plan, stored_status)
        try:
            written = await self.grants.publish_status(obj, plan.status)
        except kube.ApiError as error:
            log.warning("could not publish status of %s: %s", config.name, error)
            retry = True
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
        return Result(requeue_after=plan.requeue_after, retry=retry, plan=plan)

    def _hold(self, topic: str, message: str) -> Result:
        if self._reported.get("hold") != topic:
            log.warning(message)
        self._reported["hold"] = topic
        return Result(held=message)

    def _record_decisions(self, plan: membership.Plan) -> None:
        """One `discovery.decide` span and one log line per namespace whose decision changed."""
        acting = {action.namespace for action in plan.actions}
        for name, decision in plan.decisions.items():
            current = _significant(decision)
            if self._primed:
                # A namespace first seen with a write to do gets its span too: it explains the write.
                first_write = name in acting and name not in self._decisions
                if current == self._decisions.get(name, _BASELINE) and not first_write:
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
        self._decisions = {name: _significant(decision) for name, decision in plan.decisions.items()}
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

    async def _report(self, obj: kube.Body, plan: membership.Plan, stored: Mapping[str, Any]) -> None:
        """Warning Events, each once: an invalid selector (on the custom resource), a grant conflict."""
        valid = _condition(plan.status.get("conditions") or [], membership.SELECTORS_VALID)
        if valid.get("status") == "False":
            message = str(valid.get("message", ""))
            before = _condition(stored.get("conditions") or [], membership.SELECTORS_VALID)
            if before.get("message") != message and self._reported.get("selectors") != message:
                await self._warn(obj, reason=str(policy.Reason.INVALID_SELECTOR), message=message)
            self._reported["selectors"] = message
        else:
            self._reported.pop("selectors", None)
        conflicts = frozenset((item.namespace, item.name) for item in plan.conflicts)
        for conflict in plan.conflicts:
            if (conflict.namespace, conflict.name) not in self._conflicts:
                log.warning(conflict.message, extra={"namespace": conflict.namespace})
                await self.grants.post_event(
                    grants.namespace_reference(conflict.namespace),
                    reason="GrantConflict",
                    message=conflict.message,
                    warning=True,
                )
        self._conflicts = conflicts

    async def _warn(self, obj: kube.Body, *, reason: str, message: str) -> None:
        log.warning(message, extra={"reason": reason})
        resource = self.ctx.config.resource
        reference = grants.object_reference(obj, api_version=resource.api_version, kind=resource.kind)
        await self.grants.post_event(reference, reason=reason, message=message, warning=True)


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


def _newest(current: kube.Body | None, candidate: kube.Body) -> kube.Body:
    if current is None or _version(candidate) > _version(current):
        return candidate
    return current

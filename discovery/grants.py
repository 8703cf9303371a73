"""The one writer in discovery: sends the plan's RoleBinding writes, publishes status, posts Events.

Called by `controller.py` with actions from `membership.Planner`; decides nothing itself. Every write is
idempotent and guarded (resourceVersion on PUT, uid precondition on DELETE), so a crash between two writes
is repaired by the next converge. An answer meaning "the world moved" (404, 409, 403 from a terminating
namespace) is not an error here: the outcome says `retry` and the controller converges again from fresh
state. Each write is a `discovery.grant` or `discovery.revoke` span; the grant's W3C traceparent is written on
the RoleBinding so the grantee can link its work to it. The Event of a write is posted separately
(`announce`, under the write's span) so the controller can send every grant before any status or Event.
Never writes a RoleBinding the plan did not name, and never reads the cluster to decide anything.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation import tracecontext

from discovery import bindings, constants, kube, membership, policy
from discovery import config as discovery_config

log = logging.getLogger(__name__)

_PROPAGATOR: Final = tracecontext.TraceContextTextMapPropagator()
# Answers that mean our view was stale (or the namespace is going away): gather again, decide again.
WORLD_MOVED: Final = frozenset({403, 404, 409})

_MAX_REMEMBERED_FAILURES: Final = 1024

GRANT_KINDS: Final = frozenset(
    {
        membership.ActionKind.CREATE,
        membership.ActionKind.RECREATE,
        membership.ActionKind.REPAIR,
        membership.ActionKind.RESTORE,
    }
)
# Event reason per action, as `kubectl get events` shows it.
EVENT_REASONS: Final[Mapping[membership.ActionKind, str]] = {
    membership.ActionKind.CREATE: "Granted",
    membership.ActionKind.RECREATE: "Granted",
    membership.ActionKind.REPAIR: "Repaired",
    membership.ActionKind.RESTORE: "Restored",
    membership.ActionKind.MARK_DRAINING: "Draining",
    membership.ActionKind.REVOKE: "Revoked",
}


class Observer(Protocol):
    """Optional metrics sink (the owning application's; `toolhive.metrics.Metrics` fits)."""

    def count_grant(self) -> None: ...

    def count_revoke(self) -> None: ...

    def set_managed_namespaces(self, count: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one action did. `current` is the object after the last write (None: deleted or unknown)."""

    action: membership.Action
    done: bool
    retry: bool = False
    current: kube.Body | None = dataclasses.field(default=None, hash=False)
    deleted: bool = False
    error: str = ""
    involved: kube.Body | None = dataclasses.field(default=None, hash=False, compare=False)
    """The Namespace object the Event is about, when known (for its uid)."""
    span: trace.Span | None = dataclasses.field(default=None, hash=False, compare=False)
    """The write's span: its Event is posted under it, however much later."""


class Grants:
    """Writes RoleBindings, status and Events. `writes` counts requests by kind (tests assert on it)."""

    def __init__(
        self,
        api: kube.Api,
        *,
        config: discovery_config.Config,
        tracer: trace.Tracer,
        clock: Callable[[], datetime],
        observer: Observer | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.tracer = tracer
        self.clock = clock
        self.observer = observer
        self.writes: collections.Counter[str] = collections.Counter()
        self._event_failures = 0
        self._failures: set[tuple[str, str, int]] = set()

    # -- RoleBindings -------------------------------------------------------------------------------

    async def apply(
        self,
        action: membership.Action,
        *,
        decision: policy.Decision | None = None,
        parent: otel_context.Context | None = None,
        involved: kube.Body | None = None,
    ) -> Outcome:
        """Carry out one action inside its span (child of `parent`, the decision's span, when given).

        Posts no Event: pass the outcome to `announce` for that. `involved` is the Namespace object (for
        the Event's uid), when known. Never raises ApiError: a failed write is logged and reported as an
        Outcome with `retry`.
        """
        is_grant = action.kind in GRANT_KINDS
        attributes: dict[str, str] = {
            "k8s.namespace.name": action.namespace,
            "discovery.rolebinding.name": action.name,
            "discovery.action": str(action.kind),
        }
        if decision is not None:
            attributes["discovery.decision.reason"] = str(decision.reason)
        with self.tracer.start_as_current_span(
            "discovery.grant" if is_grant else "discovery.revoke",
            context=parent,
            attributes=attributes,
        ) as span:
            try:
                outcome = await self._send(action, traceparent=_traceparent())
            except kube.ApiError as error:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
                span.set_attribute("error.type", str(error.status))
                # Logged once per namespace, write and answer until a write there succeeds (bounded).
                failure = (action.namespace, str(action.kind), error.status)
                level = logging.INFO if error.status in WORLD_MOVED else logging.WARNING
                if failure in self._failures:
                    level = logging.DEBUG
                if len(self._failures) >= _MAX_REMEMBERED_FAILURES:
                    self._failures.clear()  # namespaces come and go; worst case a line is logged again
                self._failures.add(failure)
                log.log(
                    level,
                    "%s %s/%s not done (%s); will converge again",
                    action.kind,
                    action.namespace,
                    action.name,
                    error,
                    extra={"namespace": action.namespace, "action": str(action.kind), "status": error.status},
                )
                return Outcome(action, done=False, retry=True, error=str(error))
            self._failures = {item for item in self._failures if item[0] != action.namespace}
            log.info(
                "%s %s/%s: %s",
                action.kind,
                action.namespace,
                action.name,
                action.message,
                extra={"namespace": action.namespace, "action": str(action.kind)},
            )
            if self.observer is not None:
                if action.kind in (membership.ActionKind.CREATE, membership.ActionKind.RECREATE):
                    self.observer.count_grant()
                elif action.kind is membership.ActionKind.REVOKE:
                    self.observer.count_revoke()
            return dataclasses.replace(outcome, involved=involved, span=span)

    async def announce(self, outcome: Outcome) -> None:
        """The Event of a write that was done (`Granted`, `Revoked`, ...), under the write's span."""
        if not outcome.done:
            return
        action = outcome.action
        with contextlib.ExitStack() as stack:
            if outcome.span is not None:
                stack.enter_context(trace.use_span(outcome.span, end_on_exit=False))
            await self.post_event(
                namespace_reference(action.namespace, outcome.involved),
                reason=EVENT_REASONS[action.kind],
                message=f"RoleBinding {action.name}: {action.message}",
            )

    async def _send(self, action: membership.Action, *, traceparent: str | None) -> Outcome:
        kind = membership.ActionKind
        if action.kind is kind.CREATE:
            return await self._create(action, traceparent=traceparent)
        if action.kind in (kind.REPAIR, kind.RESTORE, kind.MARK_DRAINING):
            assert action.body is not None
            body = _with_traceparent(action.body, traceparent)
            current = await self.api.replace(kube.ROLEBINDINGS, body)
            self.writes["update"] += 1
            return Outcome(action, done=True, current=current)
        # Revoke and Recreate both start by letting go of our finalizer, then deleting this very object.
        if action.release is not None:
            try:
                await self.api.replace(kube.ROLEBINDINGS, action.release)
                self.writes["update"] += 1
            except kube.ApiError as error:
                if error.status != 404:
                    raise
                if action.kind is kind.REVOKE:
                    return Outcome(action, done=True, deleted=True)
        await self.api.delete(kube.ROLEBINDINGS, action.name, namespace=action.namespace, uid=action.uid)
        self.writes["delete"] += 1
        if action.kind is kind.REVOKE:
            return Outcome(action, done=True, deleted=True)
        return await self._create(action, traceparent=traceparent)

    async def _create(self, action: membership.Action, *, traceparent: str | None) -> Outcome:
        assert action.body is not None
        body = _with_traceparent(action.body, traceparent)
        current = await self.api.create(kube.ROLEBINDINGS, body, namespace=action.namespace)
        self.writes["create"] += 1
        return Outcome(action, done=True, current=current)

    # -- status -------------------------------------------------------------------------------------

    async def publish_status(self, obj: kube.Body, status: Mapping[str, Any]) -> kube.Body | None:
        """Write `status` through the status subresource when it differs from `obj`'s; None when equal.

        A merge patch: keys we no longer publish are set to null so the stored status equals ours.
        """
        stored = obj.get("status") or {}
        if self.observer is not None:
            # Every pass, not only on change: after a restart the stored status is already right.
            self.observer.set_managed_namespaces(int(status.get("memberCount", 0)))
        if stored == status:
            return None
        patch: dict[str, Any] = {key: None for key in stored if key not in status}
        patch.update(status)
        name = str((obj.get("metadata") or {}).get("name", ""))
        with self.tracer.start_as_current_span(
            "discovery.publish",
            attributes={
                "discovery.members": int(status.get("memberCount", 0)),
                "discovery.pending": int(status.get("pendingCount", 0)),
                "discovery.draining": int(status.get("drainingCount", 0)),
            },
        ):
            current = await self.api.patch(
                self.config.resource, name, {"status": patch}, subresource="status"
            )
        self.writes["status"] += 1
        return current

    # -- events -------------------------------------------------------------------------------------

    async def post_event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        """Best effort: an Event about a cluster-scoped object, in `config.events_namespace`.

        A failure is logged (once at warning level until one succeeds) and never fails the caller.
        """
        now = bindings.format_time(self.clock())
        name = str(involved.get("name", "object"))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": self.config.events_namespace},
            "involvedObject": dict(involved),
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.config.component},
            "reportingComponent": self.config.component,
            "reportingInstance": self.config.instance or self.config.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.create(kube.EVENTS, body, namespace=self.config.events_namespace)
        except kube.ApiError as error:
            self._event_failures += 1
            level = logging.WARNING if self._event_failures == 1 else logging.DEBUG
            log.log(level, "could not post event %s on %s: %s", reason, name, error)
            return
        self.writes["event"] += 1
        self._event_failures = 0


def namespace_reference(name: str, namespace: kube.Body | None = None) -> dict[str, str]:
    """An Event's involvedObject for the Namespace `name` (with its uid when the object is known)."""
    if namespace is None:
        return {"apiVersion": "v1", "kind": "Namespace", "name": name}
    return object_reference(namespace, api_version="v1", kind="Namespace")


def object_reference(obj: Mapping[str, Any], *, api_version: str, kind: str) -> dict[str, str]:
    """An Event's involvedObject for a cluster-scoped object."""
    metadata = obj.get("metadata") or {}
    reference = {"apiVersion": api_version, "kind": kind, "name": str(metadata.get("name", ""))}
    if metadata.get("uid"):
        reference["uid"] = str(metadata["uid"])
    return reference


def _traceparent() -> str | None:
    """The W3C traceparent of the current span, or None when it is not a valid (recording) context."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def _with_traceparent(body: kube.Body, traceparent: str | None) -> kube.Body:
    if not traceparent:
        return body
    body = copy.deepcopy(body)
    annotations = body.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[constants.TRACEPARENT_ANNOTATION] = traceparent
    return body

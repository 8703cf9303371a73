"""One pass over one MCPServer: gather -> decide -> build -> apply -> report.

    gather   the MCPServer and its watched children from the multiplexer's caches
    decide   deleting? invalid (phase Failed, nothing else touched)? else desired manifests (pure builders)
    apply    the Applier writes only what differs; adopt the runner's StatefulSet
    report   status from the Deployment's readiness, written only when it changed; Events on transitions

`process` is the WorkQueue's callback: it opens the `toolhive.reconcile` span (linked to what caused the
pass, such as the discovery decision that onboarded the namespace), turns API errors into bounded retries
and counts writes. `release_namespace` lets go of a namespace the operator leaves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import cachetools
from opentelemetry import trace

from discovery import kube
from toolhive import apply, builders, constants, names, resources, status, telemetry
from toolhive.api import validation
from toolhive.builders.inputs import BuildConfig
from toolhive.workqueue import Result, Trigger

log = logging.getLogger(__name__)
_tracer = telemetry.GlobalTracer("toolhive.reconcile")

Lookup = Callable[..., kube.Body | None]
WATCHED = {res.kind for res in (resources.DEPLOYMENTS, resources.SERVICES, resources.STATEFULSETS)}
UNWATCHED = (resources.SERVICEACCOUNTS, resources.ROLES, resources.ROLEBINDINGS, resources.CONFIGMAPS)
"""The children no informer caches: the resync verifies them from one LIST per namespace and kind."""
CHILD_SELECTOR = f"{constants.LABEL_TOOLHIVE}=true"
"""Every child carries it (builders.meta.standard_labels); an unlabelled one is read by name instead."""
SERVICE_ACCOUNT_RECHECK_SECONDS = 15.0
"""How often a server waiting for its `spec.serviceAccount` looks again (ServiceAccounts are not watched)."""


class Snapshots:
    """The resourceVersions of the unwatched children of a namespace, as the resync's LISTs saw them.

    `take` hands each entry to one pass (and forgets it), so a namespace costs one LIST per kind per
    resync instead of a GET per object. Only versions are kept: the applier compares one with what it
    last wrote and reads the object in full only when they differ.
    """

    def __init__(self) -> None:
        self._versions: dict[str, dict[tuple[str, str], str]] = {}

    def put(self, namespace: str, items: list[kube.Body]) -> None:
        self._versions[namespace] = {
            (str(item["kind"]), str(item["metadata"]["name"])): str(item["metadata"].get("resourceVersion"))
            for item in items
        }

    def drop(self, namespace: str) -> None:
        self._versions.pop(namespace, None)

    def take(self, namespace: str, kind: str, name: str, *, recorded: bool) -> kube.Body | object | None:
        """A slim copy of the listed object, None if the LIST did not have it, or apply.UNKNOWN.

        UNKNOWN (read it by name) when no snapshot was taken, and when the LIST missed an object this
        process has applied: it may have been created after the LIST, or lost its label.
        """
        versions = self._versions.get(namespace)
        if versions is None:
            return apply.UNKNOWN
        version = versions.pop((kind, name), None)
        if version is None:
            return apply.UNKNOWN if recorded else None
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._versions.values())


@dataclasses.dataclass(frozen=True)
class Context:
    """Collaborators of a pass, bundled so tests can pass fakes."""

    api: kube.Api
    applier: apply.Applier
    lookup: Lookup
    build: BuildConfig
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    on_reconciled: Callable[[str, float], None] | None = None
    """Called with (outcome, seconds) after every pass (metrics)."""
    failing: cachetools.LRUCache[tuple[str, str], int] = dataclasses.field(
        default_factory=lambda: cachetools.LRUCache(maxsize=10_000)
    )
    """Objects whose last pass failed: their next failures log at DEBUG (logged once, not in a loop)."""
    snapshots: Snapshots = dataclasses.field(default_factory=Snapshots)
    """What the resync listed, for its passes."""


async def process(key: tuple[str, str], triggers: tuple[Trigger, ...], *, ctx: Context) -> Result:
    namespace, name = key
    links = [trace.Link(t.link) for t in triggers if isinstance(t.link, trace.SpanContext)]
    reasons = sorted({t.reason for t in triggers}) or ["unknown"]
    with _tracer.start_as_current_span(
        "toolhive.reconcile",
        links=links,
        attributes={
            "k8s.namespace.name": namespace,
            "toolhive.mcpserver.name": name,
            "toolhive.reconcile.trigger": ",".join(reasons),
        },
    ) as span:
        before = sum(ctx.applier.writes.values())
        started = time.perf_counter()
        try:
            body = ctx.lookup(resources.MCPSERVERS, namespace=namespace, name=name)
            if body is None:
                outcome, result = "gone", Result()
            else:
                meta = body["metadata"]
                span.set_attribute("toolhive.mcpserver.uid", str(meta.get("uid", "")))
                span.set_attribute("toolhive.mcpserver.generation", int(meta.get("generation") or 0))
                outcome, result = await reconcile(body, ctx=ctx, verify="resync" in reasons)
        except kube.ApiError as error:
            telemetry.mark_error(span, error, description=f"{error.status} {error.reason}")
            outcome = "conflict" if error.status == 409 else "error"
            failures = ctx.failing.get(key, 0) + 1
            ctx.failing[key] = failures
            hint = (
                " (not permitted here: its RoleBinding may be gone; with a static namespace list, delete "
                "MCPServers before their namespace)"
                if error.status == 403
                else ""
            )
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "reconcile failed, retrying with backoff: %s%s",
                error,
                hint,
                extra={
                    "k8s.namespace.name": namespace,
                    "toolhive.mcpserver.name": name,
                    "status": error.status,
                    "failures": failures,
                },
            )
            result = Result(retry=True)
        else:
            if ctx.failing.pop(key, None) is not None:
                log.info(
                    "reconcile recovered",
                    extra={"k8s.namespace.name": namespace, "toolhive.mcpserver.name": name},
                )
        span.set_attribute("toolhive.reconcile.outcome", outcome)
        span.set_attribute("toolhive.reconcile.writes", sum(ctx.applier.writes.values()) - before)
        if ctx.on_reconciled is not None:
            ctx.on_reconciled(outcome, time.perf_counter() - started)
        return result


async def reconcile(body: kube.Body, *, ctx: Context, verify: bool = False) -> tuple[str, Result]:
    """Bring one MCPServer's children and status in line with its spec. Returns (outcome, next step)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if meta.get("deletionTimestamp"):
        if constants.FINALIZER in (meta.get("finalizers") or []):
            await finalize(body, ctx=ctx)
            return "finalized", Result()
        return "deleting", Result()

    with _tracer.start_as_current_span("toolhive.decide"):
        checked = validation.check(body)
    server = checked.server
    if server is None or checked.problems:
        invalid = status.Observed(
            _generation(body),
            ctx.applier.observed_status(body),
            checked.problems,
            unsupported=checked.unsupported,
        )
        if await _report(body, ctx=ctx, observed=invalid):
            message = validation.summarize(checked.problems)
            await ctx.applier.record_event(body, type_="Warning", reason="InvalidSpec", message=message)
        return "invalid", Result()  # only a new spec can fix it: no retry

    # Gather: a named ServiceAccount must exist, else the runner's pods are refused at admission, far
    # from the field. Nothing is created until it does (one GET per recheck, no write while waiting).
    account = server.spec.service_account
    if account is not None:
        found = await ctx.api.get_or_none(resources.SERVICEACCOUNTS, account, namespace=namespace)
        if found is None:
            waiting = status.Observed(
                _generation(body),
                ctx.applier.observed_status(body),
                unsupported=checked.unsupported,
                service_account=(account, False),
            )
            if await _report(body, ctx=ctx, observed=waiting):
                await ctx.applier.record_event(
                    body,
                    type_="Warning",
                    reason="ServiceAccountNotFound",
                    message=f"spec.serviceAccount: ServiceAccount {account!r} not found in {namespace}",
                )
            return "waiting", Result(requeue_after=SERVICE_ACCOUNT_RECHECK_SECONDS)

    if constants.FINALIZER not in (meta.get("finalizers") or []):
        body = await ctx.applier.set_finalizer(body, present=True)

    with _tracer.start_as_current_span("toolhive.build"):
        desired = builders.build_all(server, config=ctx.build)
    first_pass = not body.get("status")
    changes: list[tuple[str, bool]] = []  # ("Kind/name", created) in apply order
    seen: dict[str, kube.Body] = {}  # kind -> the freshest copy this pass saw (written or read), for status
    for wave in desired.waves():
        # The objects of a wave are independent: one request each, all in flight at once. A failure
        # lets the rest of its wave finish, reports what was changed, and stops before the next wave.
        outcomes = await asyncio.gather(
            *(_apply(manifest, ctx=ctx, first_pass=first_pass, verify=verify) for manifest in wave),
            return_exceptions=True,
        )
        failed: list[BaseException] = []
        for manifest, outcome in zip(wave, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failed.append(outcome)
                continue
            change, answer = outcome
            if change is not None:
                changes.append((f"{manifest['kind']}/{manifest['metadata']['name']}", change))
            if answer is not None:
                seen[manifest["kind"]] = answer
        if failed:
            await _record_changes(body, changes, ctx=ctx)
            raise failed[0]

    await _adopt_statefulset(body, ctx=ctx)
    # A Deployment this pass wrote or read is newer than the cache (whose watch event is on its way):
    # judging status from it makes the first status the settled one, not a second write on that event.
    deployment = seen.get("Deployment") or ctx.lookup(
        resources.DEPLOYMENTS, namespace=namespace, name=names.deployment_name(name)
    )
    observed_status = status.Observed(
        generation=_generation(body),
        previous=ctx.applier.observed_status(body),
        deployment=deployment,
        url=desired.url,
        unsupported=checked.unsupported,
        replicas_capped=desired.replicas_capped,
        service_account=(account, True) if account is not None else None,
    )
    await _all(_report(body, ctx=ctx, observed=observed_status), _record_changes(body, changes, ctx=ctx))
    return ("changed" if changes else "unchanged"), Result()


async def _apply(
    manifest: kube.Body, *, ctx: Context, first_pass: bool, verify: bool
) -> tuple[bool | None, kube.Body | None]:
    """Ensure one child. Returns (None unchanged | True created | False updated, the object as last seen)."""
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    namespace = manifest["metadata"]["namespace"]
    remembered = ctx.applier.remembers(manifest)
    # A server without status was never reconciled, so its children cannot exist: no read first. Unless
    # this process applied them already (a pass that raced its own status write's watch event).
    observed: object = None if first_pass and not remembered else apply.UNKNOWN
    partial = kind in WATCHED  # the multiplexer caches slim copies of these
    if partial:
        observed = ctx.lookup(resources.for_manifest(manifest), namespace=namespace, name=name)
        if observed is None and remembered:
            # Applied by this process yet not cached: the watch event of our own write may still be on
            # its way, or the object was deleted. A read tells which, instead of a blind second write.
            observed = await ctx.api.get_or_none(resources.for_manifest(manifest), name, namespace=namespace)
            partial = False
    elif verify:
        observed = ctx.snapshots.take(namespace, kind, name, recorded=ctx.applier.remembers(manifest))
        partial = isinstance(observed, dict)  # a listed copy: its resourceVersion, nothing else
        if observed is apply.UNKNOWN:  # no snapshot (or not to be trusted here): read it
            observed = await ctx.api.get_or_none(resources.for_manifest(manifest), name, namespace=namespace)
            partial = False
    with _tracer.start_as_current_span(
        f"toolhive.apply {kind}", attributes={"toolhive.apply.name": name}
    ) as span:
        outcome = await ctx.applier.ensure(manifest, observed=observed, partial=partial)
        span.set_attribute("toolhive.apply.changed", outcome.changed)
    return (observed is None if outcome.changed else None), outcome.object


async def _record_changes(body: kube.Body, changes: list[tuple[str, bool]], *, ctx: Context) -> None:
    """One Event for what a pass changed: `Created` if it created anything, else `Updated`."""
    created = [name for name, was_created in changes if was_created]
    if created:
        await ctx.applier.record_event(
            body, type_="Normal", reason="Created", message="created " + ", ".join(created)
        )
    elif changes:
        updated = [name for name, _ in changes]
        await ctx.applier.record_event(
            body, type_="Normal", reason="Updated", message="updated " + ", ".join(updated)
        )


async def _all(*steps: Awaitable[object]) -> None:
    """Run independent requests at once; every one finishes before the first failure is raised."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def finalize(body: kube.Body, *, ctx: Context) -> None:
    """Delete what the proxy runner created (it may lack ownerReferences), then drop the finalizer."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    with _tracer.start_as_current_span("toolhive.finalize"):
        await _report(
            body,
            ctx=ctx,
            observed=status.Observed(_generation(body), ctx.applier.observed_status(body), terminating=True),
        )
        await ctx.applier.delete(resources.STATEFULSETS, name, namespace=namespace)
        for service in (names.headless_service_name(name), names.backend_service_name(name)):
            await ctx.applier.delete(resources.SERVICES, service, namespace=namespace)
        await ctx.applier.delete(resources.CONFIGMAPS, names.runconfig_name(name), namespace=namespace)
        await ctx.applier.set_finalizer(body, present=False)


async def list_children(namespace: str, *, ctx: Context) -> None:
    """Snapshot the unwatched children of `namespace` (one LIST per kind) for the resync's passes.

    A failed LIST leaves no snapshot: the passes then read each object by name, as before.
    """
    with _tracer.start_as_current_span("toolhive.resync.list", attributes={"k8s.namespace.name": namespace}):
        lists = await asyncio.gather(
            *(ctx.api.list(res, namespace=namespace, label_selector=CHILD_SELECTOR) for res in UNWATCHED),
            return_exceptions=True,
        )
    items: list[kube.Body] = []
    for listed in lists:
        if isinstance(listed, kube.ApiError):
            ctx.snapshots.drop(namespace)
            log.debug(
                "resync list failed, reading by name: %s", listed, extra={"k8s.namespace.name": namespace}
            )
            return
        if isinstance(listed, BaseException):
            raise listed
        items += listed[0]
    ctx.snapshots.put(namespace, items)


async def release_namespace(namespace: str, *, ctx: Context) -> None:
    """Let go of `namespace`: finalize MCPServers being deleted, strip the finalizer from the rest.

    Reads fresh (not the cache) because the namespace may never have been served by this process.
    """
    with _tracer.start_as_current_span("toolhive.release", attributes={"k8s.namespace.name": namespace}):
        items, _ = await ctx.api.list(resources.MCPSERVERS, namespace=namespace)
        for body in items:
            meta = body["metadata"]
            if constants.FINALIZER not in (meta.get("finalizers") or []):
                continue
            if meta.get("deletionTimestamp"):
                await finalize(body, ctx=ctx)
            else:
                await ctx.applier.set_finalizer(body, present=False)
        ctx.applier.forget(namespace)
        ctx.snapshots.drop(namespace)


async def _report(body: kube.Body, *, ctx: Context, observed: status.Observed) -> bool:
    with _tracer.start_as_current_span("toolhive.status"):
        return await ctx.applier.set_status(body, status.decide_status(observed, now=ctx.clock()))


async def _adopt_statefulset(body: kube.Body, *, ctx: Context) -> None:
    meta = body["metadata"]
    sts = ctx.lookup(resources.STATEFULSETS, namespace=meta["namespace"], name=meta["name"])
    if sts is None:
        return
    references = (sts.get("metadata") or {}).get("ownerReferences") or []
    if any(ref.get("controller") for ref in references):
        return
    await ctx.applier.adopt(sts, owner_reference=builders.owner_reference(body))


def _generation(body: kube.Body) -> int | None:
    value = body["metadata"].get("generation")
    return value if isinstance(value, int) else None

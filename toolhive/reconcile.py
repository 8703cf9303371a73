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

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cachetools
from opentelemetry import trace

from discovery import kube
from toolhive import apply, builders, constants, names, resources, status, telemetry
from toolhive.api import validation
from toolhive.builders.inputs import BuildConfig
from toolhive.workqueue import Result, Trigger

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("toolhive.reconcile")

Lookup = Callable[..., kube.Body | None]
WATCHED = {res.kind for res in (resources.DEPLOYMENTS, resources.SERVICES, resources.STATEFULSETS)}
SERVICE_ACCOUNT_RECHECK_SECONDS = 15.0
"""How often a server waiting for its `spec.serviceAccount` looks again (ServiceAccounts are not watched)."""


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
            _generation(body), _status(body), checked.problems, unsupported=checked.unsupported
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
                _status(body),
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
    created: list[str] = []
    updated: list[str] = []
    # A server never reconciled before (no status) has no children yet: apply without reading first.
    first_pass = not body.get("status")
    for manifest in desired.manifests:
        observed: object = None if first_pass else apply.UNKNOWN
        if manifest["kind"] in WATCHED:
            res = resources.for_manifest(manifest)
            observed = ctx.lookup(res, namespace=namespace, name=manifest["metadata"]["name"])
        elif verify:
            res = resources.for_manifest(manifest)
            observed = await ctx.api.get_or_none(res, manifest["metadata"]["name"], namespace=namespace)
        with _tracer.start_as_current_span(
            f"toolhive.apply {manifest['kind']}",
            attributes={"toolhive.apply.name": manifest["metadata"]["name"]},
        ) as span:
            partial = manifest["kind"] in WATCHED  # the multiplexer caches slim copies of these
            outcome = await ctx.applier.ensure(manifest, observed=observed, partial=partial)
            span.set_attribute("toolhive.apply.changed", outcome.changed)
        if outcome.changed:
            (created if observed is None else updated).append(
                f"{manifest['kind']}/{manifest['metadata']['name']}"
            )

    await _adopt_statefulset(body, ctx=ctx)
    deployment = ctx.lookup(resources.DEPLOYMENTS, namespace=namespace, name=names.deployment_name(name))
    observed_status = status.Observed(
        generation=_generation(body),
        previous=_status(body),
        deployment=deployment,
        url=desired.url,
        unsupported=checked.unsupported,
        replicas_capped=desired.replicas_capped,
        service_account=(account, True) if account is not None else None,
    )
    await _report(body, ctx=ctx, observed=observed_status)
    if created:
        await ctx.applier.record_event(
            body, type_="Normal", reason="Created", message="created " + ", ".join(created)
        )
    elif updated:
        await ctx.applier.record_event(
            body, type_="Normal", reason="Updated", message="updated " + ", ".join(updated)
        )
    return ("changed" if created or updated else "unchanged"), Result()


async def finalize(body: kube.Body, *, ctx: Context) -> None:
    """Delete what the proxy runner created (it may lack ownerReferences), then drop the finalizer."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    with _tracer.start_as_current_span("toolhive.finalize"):
        await _report(
            body, ctx=ctx, observed=status.Observed(_generation(body), _status(body), terminating=True)
        )
        await ctx.applier.delete(resources.STATEFULSETS, name, namespace=namespace)
        for service in (names.headless_service_name(name), names.backend_service_name(name)):
            await ctx.applier.delete(resources.SERVICES, service, namespace=namespace)
        await ctx.applier.delete(resources.CONFIGMAPS, names.runconfig_name(name), namespace=namespace)
        await ctx.applier.set_finalizer(body, present=False)


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


def _status(body: kube.Body) -> dict[str, Any]:
    return dict(body.get("status") or {})

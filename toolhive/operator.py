"""The operator process: wire settings, the API client, the multiplexer, scope following and probes.

    runtime.run (API client, metrics, probes, Lease) -> Applier -> Multiplexer(process=reconcile.process)
             -> scope (cluster | static | discovery) -> resync timer

`run` returns when `stop` is set (SIGTERM in the CLI), after in-flight passes finished. Called by
`toolhive-operator run`, the demo and the integration tests (which pass their own kubeconfig and stop event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from discovery import kube
from toolhive import apply, reconcile, runtime, scope, settings, telemetry
from toolhive import metrics as metrics_module
from toolhive.builders.inputs import BuildConfig
from toolhive.multiplexer import Multiplexer
from toolhive.workqueue import Result, Trigger

log = logging.getLogger(__name__)

LEASE = "toolhive-operator"
DRAIN_SECONDS = 10.0
"""How long shutdown waits for running passes; well inside the pod's 30 s termination grace period."""


async def run(
    config: settings.Settings,
    *,
    kubeconfig: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (forever when None); with leader election, act only while leading."""

    async def work(api: kube.Api, metrics: metrics_module.Metrics, leading: Callable[[], bool]) -> None:
        await _serve(config, api=api, metrics=metrics, leading=leading)

    await runtime.run(config, work, process="operator", lease=LEASE, kubeconfig=kubeconfig, stop=stop)


async def _serve(
    config: settings.Settings,
    *,
    api: kube.Api,
    metrics: metrics_module.Metrics,
    leading: Callable[[], bool] = lambda: True,
) -> None:
    """The operator proper: multiplexer, scope following and resync, until cancelled.

    Cancelled while still `leading()` (SIGTERM), running passes may finish; cancelled because the lease
    was lost, they are cancelled at once, since the next leader may already be writing.
    """
    applier = apply.Applier(api)
    mux: Multiplexer
    ctx: reconcile.Context

    async def process(key: tuple[str, str], triggers: tuple[Trigger, ...]) -> Result:
        return await reconcile.process(key, triggers, ctx=ctx)

    async def release(namespace: str) -> None:
        try:
            await reconcile.release_namespace(namespace, ctx=ctx)
        except kube.ApiError as error:
            if error.status != 403:
                raise
            # The grant is already gone (revoked after the grace period): nothing here can be touched any
            # more, so stop serving instead of retrying a 403 forever, which would also hold up every later
            # join. Finalizers left there are reported once, here.
            log.warning(
                "left namespace %s without releasing it: access already revoked (%s)",
                namespace,
                error,
                extra={"k8s.namespace.name": namespace},
            )

    mux = Multiplexer(
        api, process=process, on_release=release, workers=config.operator.max_concurrent_reconciles
    )

    def on_reconciled(outcome: str, seconds: float) -> None:
        metrics.observe_reconcile(controller="mcpserver", outcome=outcome, seconds=seconds)
        metrics.set_queue_depth(mux.queue.depth, controller="mcpserver")
        metrics.set_managed_namespaces(len(mux.namespaces))

    ctx = reconcile.Context(
        api=api,
        applier=applier,
        lookup=mux.lookup,
        build=BuildConfig.from_settings(config),
        on_reconciled=on_reconciled,
    )
    queue = asyncio.create_task(mux.queue.run(), name="workqueue")
    feeders = [asyncio.create_task(_follow_scope(config, api=api, mux=mux, applier=applier), name="scope")]
    if config.operator.resync_seconds > 0:
        feeders.append(
            asyncio.create_task(_resync(mux, ctx=ctx, period=config.operator.resync_seconds), name="resync")
        )
    try:
        await asyncio.gather(queue, *feeders)
    finally:
        # Stopping (SIGTERM, lost lease) or failed: no new work, let running passes finish (bounded),
        # then stop. An abandoned pass is harmless: every step is idempotent and the next leader redoes it.
        for task in feeders:
            task.cancel()
        await asyncio.gather(*feeders, return_exceptions=True)
        await mux.queue.drain(timeout=DRAIN_SECONDS if leading() else 0)
        queue.cancel()
        await asyncio.gather(queue, return_exceptions=True)
        await mux.stop()


async def _follow_scope(
    config: settings.Settings, *, api: kube.Api, mux: Multiplexer, applier: apply.Applier
) -> None:
    if config.rbac.scope is settings.Scope.CLUSTER:
        await mux.serve(None)
        await asyncio.Event().wait()
    if not config.discovery.enabled:
        for namespace in config.rbac.watch_namespaces:
            await mux.serve(namespace)
        await asyncio.Event().wait()

    async def serve(namespace: str, link: object) -> None:
        await mux.serve(namespace, link=link)

    async def acknowledge(namespace: str) -> bool:
        return await applier.release_grant(namespace=namespace, rolebinding=config.discovery.rolebinding_name)

    follower = scope.DiscoveryScope(
        api,
        config=config.discovery,
        serve=serve,
        release=mux.release,
        acknowledge=acknowledge,
        link_for_grant=_link_for_grant,
        served=lambda: mux.namespaces,
    )
    await follower.run()


def _link_for_grant(grant: kube.Body | None) -> object:
    """The span context discovery recorded on the grant, so the join's passes link to its decision."""
    link = telemetry.link_from_traceparent(scope.traceparent_of(grant))
    return link.context if link is not None else None


async def _resync(
    mux: Multiplexer,
    *,
    ctx: reconcile.Context,
    period: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Queue every known MCPServer once per `period`, so drift in unwatched kinds is repaired.

    Spread evenly: one namespace every `period / namespaces`, each first snapshotted with one LIST per
    unwatched kind, so neither the API server nor the queue ever sees a burst of the whole fleet.
    """
    await sleep(period)
    while True:
        by_namespace = servers_by_namespace(mux)
        if not by_namespace:
            await sleep(period)
            continue
        step = period / len(by_namespace)
        for namespace, keys in sorted(by_namespace.items()):
            if namespace in mux.namespaces or None in mux.namespaces:  # not left meanwhile
                await reconcile.list_children(namespace, ctx=ctx)
                for key in keys:
                    mux.queue.add(key, Trigger("resync"))
            await sleep(step)


def servers_by_namespace(mux: Multiplexer) -> dict[str, list[tuple[str, str]]]:
    """The keys of every cached MCPServer by namespace (cluster scope serves them all from one cache)."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for served in mux.namespaces:
        for body in mux.mcpservers(served):
            meta = body["metadata"]
            grouped.setdefault(str(meta["namespace"]), []).append((str(meta["namespace"]), str(meta["name"])))
    return grouped


def main_sync(config: settings.Settings) -> int:
    """Entry point for the CLI: run until SIGTERM/SIGINT."""

    async def main(stop: asyncio.Event) -> None:
        await run(config, stop=stop)

    runtime.run_until_signalled(main)
    return 0

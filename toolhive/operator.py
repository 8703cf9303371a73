"""The operator process: wire settings, the API client, the multiplexer, scope following and probes.

    Settings -> Api -> Applier -> Multiplexer(process=reconcile.process)
             -> scope (cluster | static | discovery)
             -> resync timer -> health probes

`run` returns when `stop` is set (SIGTERM in the CLI), after in-flight passes finished. Called by
`toolhive-operator run`, the demo and the integration tests (which pass their own kubeconfig and stop event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from opentelemetry import trace

from discovery import kube
from toolhive import apply, health, reconcile, scope, settings
from toolhive import metrics as metrics_module
from toolhive.builders.inputs import BuildConfig
from toolhive.multiplexer import Multiplexer
from toolhive.workqueue import Result, Trigger

log = logging.getLogger(__name__)


async def run(
    config: settings.Settings,
    *,
    kubeconfig: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (forever when None)."""
    stop = stop or asyncio.Event()
    metrics = metrics_module.Metrics(process="operator")

    def on_response(verb: str, resource: str, code: int) -> None:
        metrics.observe_api_request(verb=verb, resource=resource, code=code)

    api = await kube.Api.connect(kubeconfig=kubeconfig or config.kubeconfig, on_response=on_response)
    applier = apply.Applier(api)
    mux: Multiplexer
    ctx: reconcile.Context

    async def process(key: tuple[str, str], triggers: tuple[Trigger, ...]) -> Result:
        return await reconcile.process(key, triggers, ctx=ctx)

    async def release(namespace: str) -> None:
        await reconcile.release_namespace(namespace, ctx=ctx)

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

    tasks = [asyncio.create_task(mux.queue.run(), name="workqueue")]
    tasks.append(asyncio.create_task(_follow_scope(config, api=api, mux=mux, applier=applier), name="scope"))
    if config.operator.resync_seconds > 0:
        tasks.append(asyncio.create_task(_resync(mux, period=config.operator.resync_seconds), name="resync"))
    metrics_server = None
    if config.observability.metrics_port:
        metrics_server = metrics_module.serve_metrics(metrics, port=config.observability.metrics_port)
    probes = None
    if config.observability.health_port:

        async def ready() -> tuple[bool, str]:
            alive = await api.ping()
            return alive, "api reachable" if alive else "api unreachable"

        probes = await health.start(port=config.observability.health_port, ready_check=ready)
    try:
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopping and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await mux.stop()
        if probes is not None:
            await probes.cleanup()
        if metrics_server is not None:
            metrics_server.close()
        await api.close()


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
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    value = scope.traceparent_of(grant)
    if not value:
        return None
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


async def _resync(mux: Multiplexer, *, period: float) -> None:
    """Queue every known MCPServer now and then, so drift in unwatched kinds is repaired."""
    while True:
        await asyncio.sleep(period)
        for namespace in mux.namespaces:
            for body in mux.mcpservers(namespace):
                meta = body["metadata"]
                mux.queue.add((meta["namespace"], meta["name"]), Trigger("resync"))


def main_sync(config: settings.Settings) -> int:
    """Entry point for the CLI: run until SIGTERM/SIGINT."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run(config, stop=stop)

    asyncio.run(main())
    return 0

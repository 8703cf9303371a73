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
import socket
from collections.abc import Callable

from opentelemetry import trace

from discovery import kube, leader
from toolhive import apply, health, reconcile, scope, settings
from toolhive import metrics as metrics_module
from toolhive.builders.inputs import BuildConfig
from toolhive.multiplexer import Multiplexer
from toolhive.workqueue import Result, Trigger

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
"""How long shutdown waits for running passes; well inside the pod's 30 s termination grace period."""


async def run(
    config: settings.Settings,
    *,
    kubeconfig: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (forever when None); with leader election, act only while leading."""
    stop = stop or asyncio.Event()
    metrics = metrics_module.Metrics(process="operator")

    def on_response(verb: str, resource: str, code: int) -> None:
        metrics.observe_api_request(verb=verb, resource=resource, code=code)

    api = await kube.Api.connect(kubeconfig=kubeconfig or config.kubeconfig, on_response=on_response)
    metrics_server = None
    if config.observability.metrics_port:
        metrics_server = metrics_module.serve_metrics(metrics, port=config.observability.metrics_port)
    probes = None
    if config.observability.health_port:

        async def ready() -> tuple[bool, str]:
            # Leader and standby alike are ready while the API answers: a standby is doing its job.
            alive = await api.ping()
            return alive, "api reachable" if alive else "api unreachable"

        probes = await health.start(port=config.observability.health_port, ready_check=ready)

    elector = None
    if config.leader_election.enabled:
        elector = leader.LeaderElector(api, lease_config(config, name="toolhive-operator"))

    def leading() -> bool:
        return elector is None or elector.is_leader

    async def work() -> None:
        await _serve(config, api=api, metrics=metrics, leading=leading)

    if elector is not None:
        main = asyncio.create_task(elector.run(work), name="leader election")
    else:
        main = asyncio.create_task(work(), name="operator")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait([stopping, main], return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            main.result()  # a crash of the serving work ends the process (the pod restarts)
    finally:
        stopping.cancel()
        main.cancel()  # drains in-flight passes, then releases the lease
        await asyncio.gather(main, stopping, return_exceptions=True)
        if probes is not None:
            await probes.cleanup()
        if metrics_server is not None:
            metrics_server.close()
        await api.close()


def lease_config(config: settings.Settings, *, name: str) -> leader.LeaseConfig:
    election = config.leader_election
    return leader.LeaseConfig(
        name=name,
        namespace=config.pod_namespace,
        identity=config.pod_name or socket.gethostname(),
        lease_seconds=election.lease_duration_seconds,
        renew_seconds=election.renew_seconds,
    )


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
            asyncio.create_task(_resync(mux, period=config.operator.resync_seconds), name="resync")
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

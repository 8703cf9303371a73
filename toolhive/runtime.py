"""The process shell both commands share: API client, metrics, probes, leader election, clean shutdown.

    connect (API responses feed metrics) -> /metrics and /healthz,/readyz -> work, under the Lease when
    leader election is on -> until `stop` (SIGTERM) or a crash -> cancel work (releases the lease) -> close

`toolhive-operator run` and `toolhive-operator discovery` differ only in the work they pass. Called by
operator.py and cli.py; the demo and tests call `run` with their own kubeconfig and stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from discovery import kube, leader
from toolhive import health, settings
from toolhive import metrics as metrics_module

Work = Callable[[kube.Api, metrics_module.Metrics, Callable[[], bool]], Awaitable[None]]
"""work(api, metrics, leading): runs until cancelled; `leading()` tells a lost lease from a shutdown."""


def lease_config(config: settings.Settings, *, name: str) -> leader.LeaseConfig:
    election = config.leader_election
    return leader.LeaseConfig(
        name=name,
        namespace=config.pod_namespace,
        identity=config.pod_name or socket.gethostname(),
        lease_seconds=election.lease_duration_seconds,
        renew_seconds=election.renew_seconds,
    )


async def run(
    config: settings.Settings,
    work: Work,
    *,
    process: str,
    lease: str,
    kubeconfig: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `work` until `stop` is set (forever when None); with leader election, only while leading."""
    stop = stop or asyncio.Event()
    metrics = metrics_module.Metrics(process=process)

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

    elector = (
        leader.LeaderElector(api, lease_config(config, name=lease))
        if config.leader_election.enabled
        else None
    )

    def leading() -> bool:
        return elector is None or elector.is_leader

    async def serve() -> None:
        await work(api, metrics, leading)

    main = asyncio.create_task(elector.run(serve) if elector else serve(), name=f"{process} work")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait([stopping, main], return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            main.result()  # a crash of the work ends the process (the pod restarts)
    finally:
        stopping.cancel()
        main.cancel()  # lets the work drain, then releases the lease
        await asyncio.gather(main, stopping, return_exceptions=True)
        if probes is not None:
            await probes.cleanup()
        if metrics_server is not None:
            metrics_server.close()
        await api.close()


def run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """`asyncio.run(main(stop))` with SIGTERM and SIGINT setting `stop` (the CLI's entry points)."""

    async def signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(signalled())

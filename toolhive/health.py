"""`/healthz` and `/readyz` for the kubelet, served by both processes.

Liveness answers from the process's own event loop, so a stuck loop fails the probe by timing out, which
is exactly the failure worth a restart. Readiness means the process can do its job: a live API connection
(`/version` answers) and, with leader election, either leading or standing by. Called by operator.py and
discovery's runner; `ready_check` is theirs to define.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


async def start(*, port: int, ready_check: ReadyCheck, host: str = "0.0.0.0") -> web.AppRunner:
    """Serve the probes on `port` until the returned runner is cleaned up."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        ready, detail = await ready_check()
        return web.Response(status=200 if ready else 503, text=detail)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

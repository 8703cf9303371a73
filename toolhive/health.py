"""`/healthz` and `/readyz` for the kubelet, served by both processes.

Liveness answers from the process's own event loop, so a stuck loop fails the probe by timing out, which
is exactly the failure worth a restart. Readiness means the process can do its job: a live API connection
(`/version` answers) and, with leader election, either leading or standing by. Called by operator.py and
discovery's runner; `ready_check` is theirs to define.

Two fixed GET routes on asyncio streams, one request per connection: a web framework for them cost the
operator ~10 MiB of RSS (aiohttp's server and its imports), a tenth of its budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]

_READ_TIMEOUT = 5.0  # a client that connects and says nothing is dropped
_MAX_REQUEST = 8192  # request line and headers; a probe sends ~100 bytes
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
    400: "Bad Request",
}


class Probes:
    """The running probe server: `addresses` it listens on; `cleanup()` stops it."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()  # open now: closed by cleanup()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for sock in self._server.sockets] if self._server else []

    async def cleanup(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self.connections):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def start(*, port: int, ready_check: ReadyCheck, host: str = "0.0.0.0") -> Probes:
    """Serve the probes on `port` until `cleanup()` of the returned object."""

    async def answer(method: str, path: str) -> tuple[int, str]:
        route = path.split("?", 1)[0]
        if route not in ("/healthz", "/readyz"):
            return 404, "not found"
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed"
        if route == "/healthz":
            return 200, "ok"
        ready, detail = await ready_check()
        return (200 if ready else 503), detail

    probes = Probes()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        probes.connections.add(writer)
        try:
            try:
                async with asyncio.timeout(_READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError):
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                status, text = 400, "bad request"
            else:
                status, text = await answer(parts[0], parts[1])
            body = text.encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if parts[0] != "HEAD" else b"")
            )
            await writer.drain()
        except ConnectionError:
            pass  # the prober gave up (a timeout on its side); nothing to answer
        finally:
            probes.connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    probes._server = await asyncio.start_server(serve, host, port, limit=_MAX_REQUEST)
    return probes

"""The probes mean something: /healthz times out while the event loop is stuck; /readyz follows its check.

The probe server runs on its own event loop in a thread, as in the processes; the test is the kubelet,
calling over HTTP with a timeout.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from toolhive import health


class ProbeServer:
    """health.start on a private loop in a thread; `ready` is what the ready check answers."""

    def __init__(self) -> None:
        self.ready = (True, "api reachable")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: health.Probes | None = None
        started = threading.Event()

        async def ready_check() -> tuple[bool, str]:
            return self.ready

        async def start() -> None:
            self._runner = await health.start(port=0, host="127.0.0.1", ready_check=ready_check)
            self.port = int(self._runner.addresses[0][1])
            started.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=10)
        assert started.is_set()

    def get(self, path: str, *, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def block_loop(self, seconds: float) -> threading.Event:
        """Run a blocking call on the probe loop (a stuck loop); the event is set once it blocks."""
        blocking = threading.Event()

        def stuck() -> None:
            blocking.set()
            time.sleep(seconds)  # the point of the test: nothing else runs on this loop meanwhile

        self.loop.call_soon_threadsafe(stuck)
        return blocking

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def probes() -> Iterator[ProbeServer]:
    server = ProbeServer()
    try:
        yield server
    finally:
        server.close()


def test_liveness_answers_while_the_loop_runs_and_times_out_while_it_is_stuck(probes: ProbeServer) -> None:
    assert probes.get("/healthz") == (200, "ok")
    assert probes.block_loop(1.5).wait(timeout=5)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        probes.get("/healthz", timeout=0.5)
    assert probes.get("/healthz", timeout=5) == (200, "ok")  # the loop recovered: alive again


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param((True, "api reachable"), (200, "api reachable"), id="a live API connection is ready"),
        pytest.param((False, "api unreachable"), (503, "api unreachable"), id="a lost API is not ready"),
    ],
)
def test_readiness_answers_what_the_process_check_says(
    probes: ProbeServer, answer: tuple[bool, str], expected: tuple[int, str]
) -> None:
    probes.ready = answer
    assert probes.get("/readyz") == expected


def test_other_paths_methods_and_garbage_get_plain_http_errors(probes: ProbeServer) -> None:
    assert probes.get("/metrics") == (404, "not found")
    request = urllib.request.Request(f"http://127.0.0.1:{probes.port}/healthz", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=2)
    assert caught.value.code == 405
    caught.value.close()
    with socket.create_connection(("127.0.0.1", probes.port), timeout=2) as conn:
        conn.sendall(b"nonsense\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400 ")
    assert probes.get("/healthz") == (200, "ok")  # the server still answers

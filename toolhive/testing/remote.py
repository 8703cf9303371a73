"""The loopback API in its own process (`LoopbackProcess`), so a benchmark's driver never shares its GIL.

Used by the benchmarks (`benchmarks/_harness.py`); the tests keep the in-process `LoopbackApi`. The
child is a `multiprocessing` spawn child running `LoopbackApi`; the parent talks to it over a pipe for
the few things a driver reads or configures besides the HTTP API (request log, open watch counts, users,
faults, compaction). The HTTP API is the same server, unchanged. It never exposes the store itself: only
the named operations below cross the process boundary.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolhive.testing import _faults, _tls, kubeconfig, server

# What the parent may ask for: (target, method). Targets are the server, its request log, its faults.
_ALLOWED = frozenset(
    {
        ("api", "add_user"),
        ("api", "compact"),
        ("api", "open_watches"),
        ("requests", "by_verb"),
        ("requests", "entries"),
        ("requests", "reset"),
        ("requests", "__len__"),
        ("faults", "add"),
        ("faults", "latency"),
        ("faults", "clear"),
        ("faults", "drop_watches"),
    }
)


def _child(conn: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    """The child process: start the server, report its addresses, answer calls until the pipe closes."""
    # The store is a large, growing heap of long-lived dicts (objects, their history) that form no
    # cycles; with the default thresholds the cyclic collector's full passes over it were ~30% of the
    # CPU of a 10 000-object cold start. Young collections stay frequent enough for request garbage.
    gc.set_threshold(50_000, 20, 10)
    api = server.LoopbackApi(**options)
    try:
        api.start()
    except BaseException as exc:  # reported to the parent, which raises
        conn.send(("error", repr(exc)))
        return
    conn.send(("ready", {"http": api.http_url, "https": api.https_url, "token": api.admin_token}))
    targets: dict[str, Any] = {"api": api, "requests": api.requests, "faults": api.faults}
    try:
        while True:
            try:
                target, method, args, kwargs = conn.recv()
            except (EOFError, OSError):
                return  # the parent went away (or closed us): stop serving
            if (target, method) not in _ALLOWED:
                conn.send(("error", f"not allowed: {target}.{method}"))
                continue
            try:
                if (target, method) == ("requests", "entries"):
                    result: Any = list(api.requests)
                else:
                    result = getattr(targets[target], method)(*args, **kwargs)
            except Exception as exc:  # the caller gets it as a RuntimeError
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            else:
                conn.send(("ok", result))
    finally:
        api.stop()


class _RemoteRequests:
    """`LoopbackProcess.requests`: the child's request log, read over the pipe (same methods)."""

    def __init__(self, owner: LoopbackProcess) -> None:
        self._owner = owner

    def by_verb(self) -> dict[str, int]:
        result: dict[str, int] = self._owner.invoke("requests", "by_verb")
        return result

    def reset(self) -> None:
        self._owner.invoke("requests", "reset")

    def __len__(self) -> int:
        result: int = self._owner.invoke("requests", "__len__")
        return result

    def __iter__(self) -> Iterator[_faults.Request]:
        return iter(self._snapshot())

    def _snapshot(self) -> _faults.RequestLog:
        log = _faults.RequestLog()
        for request in self._owner.invoke("requests", "entries"):
            log.record(request)
        return log

    def count(self, verb: str | None = None, **filters: Any) -> int:
        return self._snapshot().count(verb, **filters)

    def writes(self, **filters: Any) -> int:
        return self._snapshot().writes(**filters)

    def writes_by(self, key: str = "user") -> dict[str, int]:
        return self._snapshot().writes_by(key)


class _RemoteFaults:
    """`LoopbackProcess.faults`: `Faults` of the child (add, latency, clear, drop_watches)."""

    def __init__(self, owner: LoopbackProcess) -> None:
        self._owner = owner

    def add(self, **kwargs: Any) -> None:
        self._owner.invoke("faults", "add", **kwargs)

    def latency(self, seconds: float, **kwargs: Any) -> None:
        self._owner.invoke("faults", "latency", seconds, **kwargs)

    def clear(self) -> None:
        self._owner.invoke("faults", "clear")

    def drop_watches(self, *, path: str | None = None) -> int:
        result: int = self._owner.invoke("faults", "drop_watches", path=path)
        return result


class LoopbackProcess:
    """`LoopbackApi` run in a child process, with the same front door the benchmarks use.

    Same constructor options as `LoopbackApi`. `pid` is the child's (for CPU and RSS readings);
    `requests`, `faults`, `add_user`, `compact`, `open_watches` and `write_kubeconfig` behave as on
    `LoopbackApi`. Context manager; `stop()` ends the child (idempotent).
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self.tls = bool(options.get("tls", False))
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._lock = threading.Lock()
        self.requests = _RemoteRequests(self)
        self.faults = _RemoteFaults(self)
        self.admin_token = ""
        self.url = ""
        self.http_url = ""
        self.https_url = ""

    def __enter__(self) -> LoopbackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None or self._process.pid is None:
            raise RuntimeError("loopback process is not running")
        return int(self._process.pid)

    def start(self, *, timeout: float = 60.0) -> LoopbackProcess:
        """Start the child; returns once its server listens."""
        if self._process is not None:
            return self
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_child, args=(child, self._options), name="loopback-kube-api", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError(f"loopback process did not start within {timeout} seconds")
        kind, payload = parent.recv()
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"loopback process failed to start: {payload}")
        self.http_url, self.https_url, self.admin_token = payload["http"], payload["https"], payload["token"]
        self.url = self.https_url if self.tls else self.http_url
        return self

    def stop(self, *, timeout: float = 15.0) -> None:
        """Close the pipe (the child stops its server and exits), then wait; kill it if it hangs."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)

    def invoke(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call `target.method(*args, **kwargs)` in the child (only the allowed pairs)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("loopback process is not running")
            conn.send((target, method, args, kwargs))
            kind, payload = conn.recv()
        if kind != "ok":
            raise RuntimeError(f"loopback process: {payload}")
        return payload

    def add_user(self, name: str, groups: tuple[str, ...] = (), *, token: str | None = None) -> str:
        result: str = self.invoke("api", "add_user", name, tuple(groups), token=token)
        return result

    def compact(self) -> None:
        self.invoke("api", "compact")

    def open_watches(self) -> dict[str, int]:
        result: dict[str, int] = self.invoke("api", "open_watches")
        return result

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        *,
        token: str | None = None,
        namespace: str = "default",
        tls: bool | None = None,
    ) -> Path:
        """As `LoopbackApi.write_kubeconfig` (written here: the addresses and tokens are known)."""
        secure = self.tls if tls is None else tls
        url = self.https_url if secure else self.http_url
        ca = _tls.CERT_PEM if secure else None
        return kubeconfig.write(path, url, token or self.admin_token, namespace=namespace, ca_pem=ca)

"""Shared parts of the benchmarks: a loopback API with the chart installed, the processes, measuring tools.

`Bench` starts the loopback API (RBAC on) in its own process (`remote.LoopbackProcess`: the driver's watches
never share its GIL; `in_process=True` keeps it in this process), installs the chart in discovery mode, and
runs discovery and the operator as subprocesses (their own ServiceAccounts; honest RSS and CPU). `EventClock`
timestamps watch events as this process receives them. Also: percentiles, /proc readers, tables. Used only
by the benchmark modules; never by the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from discovery import kube
from toolhive import resources
from toolhive.testing import LoopbackApi, install, processes, remote

LABEL = "toolhive.stacklok.dev/enabled"
GRANT = "toolhive-operator"
OPERATOR_USER = "system:serviceaccount:toolhive-system:toolhive-operator"
DISCOVERY_USER = "system:serviceaccount:toolhive-system:toolhive-discovery"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def values(*, grace: float = 30.0) -> dict[str, Any]:
    return {
        "operator": {
            "rbac": {"scope": "namespace", "discovery": {"enabled": True, "releaseGraceSeconds": grace}},
            "logLevel": "WARNING",
        },
        "discovery": {"logLevel": "WARNING"},
    }


class Bench:
    """One benchmark environment: `async with Bench() as bench:`; everything is torn down on exit."""

    def __init__(
        self,
        *,
        grace: float = 30.0,
        operator_env: Mapping[str, str] | None = None,
        in_process: bool | None = None,
    ) -> None:
        self.grace = grace
        self.operator_env = dict(operator_env or {})
        self.workdir = Path(tempfile.mkdtemp(prefix="toolhive-bench-"))
        if in_process is None:
            in_process = os.environ.get("TOOLHIVE_BENCH_API", "process") == "thread"
        options: dict[str, Any] = {"rbac": True, "history": 200_000, "bookmark_interval": 30.0}
        self.loopback: LoopbackApi | remote.LoopbackProcess = (
            LoopbackApi(**options) if in_process else remote.LoopbackProcess(**options)
        )
        self.installation: install.Installation | None = None
        self.admin: kube.Api | None = None
        self.processes: dict[str, processes.Process] = {}

    async def __aenter__(self) -> Bench:
        self.loopback.start()
        kubeconfig = self.loopback.write_kubeconfig(self.workdir / "admin.kubeconfig")
        self.installation = await asyncio.to_thread(
            install.install, values(grace=self.grace), admin_kubeconfig=kubeconfig, workdir=self.workdir
        )
        self.admin = await kube.Api.connect(kubeconfig=str(kubeconfig))
        return self

    async def __aexit__(self, kind: object, error: object, tb: object) -> None:
        if error is not None:
            for name, process in self.processes.items():
                print(f"--- {name} (alive: {process.alive()}), last lines:\n{process.tail(60)}", flush=True)
        self.stop_processes()
        if self.admin is not None:
            await self.admin.close()
        self.loopback.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def api(self) -> kube.Api:
        assert self.admin is not None
        return self.admin

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def start_processes(
        self, *, only: Sequence[str] = (install.DISCOVERY, install.OPERATOR), profile_dir: Path | None = None
    ) -> None:
        """Start the processes; with `profile_dir`, under cProfile (`<name>.prof` written when stopped)."""
        assert self.installation is not None
        for name in only:
            extra = self.operator_env if name == install.OPERATOR else {}
            profile = profile_dir / f"{name}.prof" if profile_dir is not None else None
            self.processes[name] = processes.start(
                self.installation, name, logdir=self.workdir / "logs", extra_env=extra, profile=profile
            )

    def stop_processes(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.processes.clear()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                raise RuntimeError(f"{name} exited:\n{process.tail()}")

    # -- bulk object creation -------------------------------------------------------------------

    async def create_namespaces(
        self, names: Iterable[str], *, labelled: bool, servers: int = 0, concurrency: int = 16
    ) -> None:
        """Create namespaces (labelled or not), each with `servers` MCPServers, `concurrency` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(name: str) -> None:
            async with gate:
                labels = {LABEL: "true"} if labelled else {}
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
                await self.api.create(kube.NAMESPACES, body)
                for index in range(servers):
                    await self.api.create(resources.MCPSERVERS, mcpserver(name, f"s{index}"), namespace=name)

        await asyncio.gather(*(one(name) for name in names))

    async def membership(self) -> dict[str, Any]:
        nsd = await self.api.get(resources.NAMESPACEDISCOVERIES, "toolhive-operator")
        return dict(nsd.get("status") or {})

    async def wait_members(self, count: int, *, timeout: float) -> float:
        """Wait until discovery reports `count` members and nothing pending; returns the seconds waited."""
        begin = time.monotonic()

        async def done() -> bool:
            self.check_alive()
            status = await self.membership()
            return int(status.get("memberCount") or 0) == count and not status.get("pending")

        await wait_until(done, timeout=timeout, interval=0.1, what=f"{count} members")
        return time.monotonic() - begin

    async def wait_quiet(self, *, seconds: float = 1.0, timeout: float = 600.0) -> float:
        """Wait until the API answered no request for `seconds`; returns the time until the last one.

        Counts every request (the benchmark driver is idle meanwhile), from the never-truncated counters.
        """
        begin = time.monotonic()
        last_count, last_change = self.request_count(), time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            self.check_alive()
            count, now = self.request_count(), time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change >= seconds:
                return last_change - begin
            if now - begin > timeout:
                raise TimeoutError(f"processes not quiet within {timeout}s")

    def request_count(self) -> int:
        return sum(self.loopback.requests.by_verb().values())

    def open_watches(self) -> dict[str, int]:
        """Open watch streams by resource plural (the loopback API's own count)."""
        return self.loopback.open_watches()

    def api_pid(self) -> int | None:
        """The loopback API's process; None when it runs in this process."""
        return self.loopback.pid if isinstance(self.loopback, remote.LoopbackProcess) else None

    def api_cpu_seconds(self) -> float | None:
        """CPU used so far by the loopback API's process; None when it runs in this process."""
        pid = self.api_pid()
        return cpu_seconds(pid) if pid is not None else None


def mcpserver(
    namespace: str, name: str, *, image: str = "ghcr.io/stackloklabs/gofetch/server:1.0"
) -> kube.Body:
    return {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": image, "transport": "streamable-http"},
    }


class EventClock:
    """Timestamps (time.monotonic) of the first watch event matching each key, as this process sees it.

    `track(res, key_fn)` opens one cluster-wide watch; `key_fn(type, obj)` returns a key or None.
    `wait(key)` returns the timestamp once the key has been seen.
    """

    def __init__(self, api: kube.Api) -> None:
        self.api = api
        self.seen: dict[Any, float] = {}
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._listed: list[asyncio.Event] = []

    def track(self, res: kube.Resource, key_fn: Callable[[str, kube.Body], Any]) -> None:
        listed = asyncio.Event()
        self._listed.append(listed)
        self._tasks.append(asyncio.create_task(self._watch(res, key_fn, listed)))

    async def ready(self, *, timeout: float = 60.0) -> None:
        """Wait until every tracked resource was listed (events from then on are seen)."""
        await asyncio.wait_for(asyncio.gather(*(listed.wait() for listed in self._listed)), timeout)

    async def _watch(
        self, res: kube.Resource, key_fn: Callable[[str, kube.Body], Any], listed: asyncio.Event
    ) -> None:
        _, version = await self.api.list(res)
        listed.set()
        while True:
            try:
                async for event in self.api.watch(res, resource_version=version, timeout_seconds=3600):
                    now = time.monotonic()
                    version = event.object.get("metadata", {}).get("resourceVersion", version)
                    if event.type == "BOOKMARK":
                        continue
                    key = key_fn(event.type, event.object)
                    if key is not None and key not in self.seen:
                        self.seen[key] = now
                        async with self._changed:
                            self._changed.notify_all()
            except kube.WatchExpired:
                _, version = await self.api.list(res)

    async def wait(self, key: Any, *, timeout: float = 30.0) -> float:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: key in self.seen), timeout)
        return self.seen[key]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Convergence:
    """Which MCPServers are converged, as this process's watches see them: a status for their generation
    (`statused`) and a Deployment (`deployed`). Call `start()` before the processes, `close()` after."""

    def __init__(self, api: kube.Api, *, total: int) -> None:
        self.total = total
        self.statused: set[tuple[str, str]] = set()
        self.deployed: set[tuple[str, str]] = set()
        self._clock = EventClock(api)

    async def start(self) -> None:
        self._clock.track(resources.MCPSERVERS, self._on_server)
        self._clock.track(resources.DEPLOYMENTS, self._on_deployment)
        await self._clock.ready()

    @property
    def fraction(self) -> float:
        return min(len(self.statused), len(self.deployed)) / self.total

    def progress(self) -> str:
        return f"{len(self.deployed)}/{self.total} Deployments, {len(self.statused)}/{self.total} statuses"

    async def close(self) -> None:
        await self._clock.close()

    def _on_server(self, kind: str, obj: kube.Body) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        if status.get("observedGeneration") == meta.get("generation") and status.get("phase"):
            self.statused.add((meta["namespace"], meta["name"]))

    def _on_deployment(self, kind: str, obj: kube.Body) -> None:
        if kind == "ADDED":
            self.deployed.add((obj["metadata"]["namespace"], obj["metadata"]["name"]))


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


# -- numbers and tables ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Percentiles:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        if not samples:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        ordered = sorted(samples)
        if len(ordered) == 1:
            return cls(1, ordered[0], ordered[0], ordered[0], ordered[0])
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        return cls(len(ordered), cuts[49], cuts[89], cuts[98], ordered[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-markdown table (readable in a terminal too)."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in text_rows]
    return "\n".join(lines)


# -- /proc ----------------------------------------------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextlib.contextmanager
def phase(name: str) -> Any:
    begin = time.monotonic()
    print(f"  .. {name}", flush=True)
    yield
    print(f"  .. {name}: {time.monotonic() - begin:.1f}s", flush=True)


def profile_summary(path: Path, *, top: int = 25) -> str:
    """The functions with the most own time (tottime) in a cProfile stats file, as text."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def machine() -> str:
    memory = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    import platform

    python = platform.python_version()
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} CPUs (nproc), {memory} RAM, Python {python}, {system}"

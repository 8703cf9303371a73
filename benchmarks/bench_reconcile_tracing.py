"""What tracing costs a whole MCPServer reconcile: off, on with sampling 0, on with sampling 1.

Run `python -m benchmarks.bench_reconcile_tracing [--rounds R] [--noop-passes N] [--create-passes N]`.
Times each `reconcile.process` call exactly as the work queue makes it, against a loopback API (RBAC off)
in a thread of this process:

- no-op pass: a converged MCPServer whose objects are all cached; zero API calls (checked);
- create pass: a new MCPServer whose children are all created (10 API calls in 5 round trips, the
  loopback server's time included, so it is the realistic denominator).

The reconciler's tracers follow OpenTelemetry's global provider, which can be set once per process; so
the global provider here is a switch, and the modes take turns (pass by pass for create passes, ten at a
time for no-op ones, `rounds` times) so that background load hits every mode alike. "off" is the API's
no-op tracer (what runs with no endpoint); the others are SDK providers with the sampler
`toolhive.telemetry` reads from `OTEL_TRACES_SAMPLER`, and sampled spans go to a BatchSpanProcessor whose
exporter discards them (the cost the reconcile path pays, not the network's). The switch adds one
delegating call per span to every mode (well under 1 us). Prints the median pass per mode, passes per
second and the ratio to "off". The defaults take about 30 s on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk import resources as sdk_resources
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks import bench_tracing_overhead
from discovery import kube
from toolhive import apply, reconcile, resources, telemetry
from toolhive.builders.inputs import BuildConfig
from toolhive.testing import LoopbackApi
from toolhive.testing import crds as testing_crds
from toolhive.workqueue import Trigger

REPO: Final = Path(__file__).resolve().parents[1]
MODES: Final = {
    "off": None,
    "on, sampling 0": {"OTEL_TRACES_SAMPLER": "always_off"},
    "on, sampling 1": {"OTEL_TRACES_SAMPLER": "always_on"},
}
CACHED: Final = (resources.MCPSERVERS, resources.DEPLOYMENTS, resources.SERVICES, resources.STATEFULSETS)
TRIGGERS: Final = (Trigger("mcpserver.modified"),)
STEADY: Final = "steady"
ROUNDS: Final = 20
NOOP_PASSES: Final = 100
CREATE_PASSES: Final = 6


class Switch(trace.TracerProvider):
    """The global provider: hands out tracers that delegate to whichever provider is `current`."""

    def __init__(self) -> None:
        self.current: trace.TracerProvider = trace.NoOpTracerProvider()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _SwitchedTracer(self, instrumenting_module_name, instrumenting_library_version)


class _SwitchedTracer(trace.Tracer):
    def __init__(self, switch: Switch, name: str, version: str | None) -> None:
        self._switch = switch
        self._name = name
        self._version = version
        self._tracers: dict[int, trace.Tracer] = {}

    def _current(self) -> trace.Tracer:
        provider = self._switch.current
        tracer = self._tracers.get(id(provider))
        if tracer is None:
            tracer = self._tracers[id(provider)] = provider.get_tracer(self._name, self._version)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


@dataclasses.dataclass
class Mode:
    name: str
    provider: trace.TracerProvider
    exporter: bench_tracing_overhead.DiscardingExporter
    noop: list[float] = dataclasses.field(default_factory=list)
    create: list[float] = dataclasses.field(default_factory=list)
    noop_spans: int = 0
    create_spans: int = 0

    def flush(self) -> int:
        """Spans exported so far, after the batch processor handed over what it held (untimed)."""
        if isinstance(self.provider, TracerProvider):
            self.provider.force_flush()
        return self.exporter.exported


def build_mode(name: str, environ: dict[str, str] | None) -> Mode:
    exporter = bench_tracing_overhead.DiscardingExporter()
    if environ is None:
        return Mode(name, trace.NoOpTracerProvider(), exporter)
    config = telemetry.read_config(environ, default_service_name="toolhive-operator")
    provider = TracerProvider(
        sampler=config.sampler,
        resource=sdk_resources.Resource(dict(config.resource_attributes)),
        shutdown_on_exit=False,
    )
    # A queue deep enough for every span of the run, so none are dropped and all pay full price.
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=1 << 20, max_export_batch_size=512)
    )
    return Mode(name, provider, exporter)


@dataclasses.dataclass(frozen=True)
class Row:
    mode: str
    noop_us: float
    create_us: float
    noop_spans: float
    create_spans: float


class Bench:
    """One API client, one applier, and a dict standing in for the multiplexer's informer caches."""

    def __init__(self, api: kube.Api, loopback: LoopbackApi) -> None:
        self.api = api
        self.loopback = loopback
        self.cache: dict[tuple[str, str, str], kube.Body] = {}
        applier = apply.Applier(api)
        self.ctx = reconcile.Context(api=api, applier=applier, lookup=self.lookup, build=BuildConfig())

    def lookup(self, res: kube.Resource, *, namespace: str, name: str) -> kube.Body | None:
        return self.cache.get((res.plural, namespace, name))

    async def install(self) -> None:
        await testing_crds.create_all(self.api)
        deadline = time.monotonic() + 10
        while True:  # a new CRD is served once established
            try:
                await self.api.list(resources.MCPSERVERS)
                return
            except kube.ApiError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def namespace(self, name: str) -> str:
        await self.api.create(
            kube.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    async def servers(self, namespace: str, names: Sequence[str]) -> None:
        for name in names:
            body = {
                "apiVersion": resources.MCPSERVERS.api_version,
                "kind": "MCPServer",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:1.0.1", "transport": "stdio"},
            }
            await self.api.create(resources.MCPSERVERS, body, namespace=namespace)
        await self.refresh(namespace)

    async def refresh(self, namespace: str) -> None:
        """What the informers would hold for `namespace`: every cached kind, listed afresh (untimed)."""
        for res in CACHED:
            for body in (await self.api.list(res, namespace=namespace))[0]:
                self.cache[(res.plural, namespace, body["metadata"]["name"])] = body

    async def passes(self, namespace: str, names: Sequence[str]) -> list[float]:
        """Seconds of one pass over each name, in order, each timed on its own."""
        timings = []
        for name in names:
            start = time.perf_counter()
            await reconcile.process((namespace, name), TRIGGERS, ctx=self.ctx)
            timings.append(time.perf_counter() - start)
        return timings


def _rotated(modes: Sequence[Mode], turn: int) -> list[Mode]:
    """Every mode once, the order rotated by `turn` so none always follows the same one."""
    return [modes[(turn + offset) % len(modes)] for offset in range(len(modes))]


async def _turn(
    switch: Switch, mode: Mode, bench: Bench, namespace: str, names: Sequence[str]
) -> list[float]:
    """Passes over `names` with `mode` switched on; checks the API calls and counts the spans (untimed)."""
    switch.current = mode.provider
    requests, exported = len(bench.loopback.requests), mode.flush()
    try:
        timings = await bench.passes(namespace, names)
    finally:
        switch.current = trace.NoOpTracerProvider()
    calls, spans = len(bench.loopback.requests) - requests, mode.flush() - exported
    if namespace == STEADY:
        if calls:
            raise RuntimeError("no-op passes made API calls: the benchmark measured the wrong thing")
        mode.noop_spans += spans
    else:
        if calls < 5 * len(names):
            raise RuntimeError("create passes made too few API calls: nothing was created")
        mode.create_spans += spans
    return timings


async def measure(
    switch: Switch,
    modes: Sequence[Mode],
    loopback: LoopbackApi,
    kubeconfig: Path,
    *,
    rounds: int,
    noop: int,
    create: int,
) -> None:
    """Modes take turns pass by pass (create) or in batches of ten (no-op), so load hits all alike."""
    api = await kube.Api.connect(kubeconfig=str(kubeconfig))
    try:
        bench = Bench(api, loopback)
        await bench.install()
        await bench.namespace(STEADY)
        await bench.servers(STEADY, ["fetch"])
        for _ in range(3):  # converge (status settles on the second pass) and warm up
            await bench.passes(STEADY, ["fetch"])
            await bench.refresh(STEADY)
        batch = 10
        for number in range(rounds):
            for chunk in range(max(1, noop // batch)):
                for mode in _rotated(modes, number + chunk):
                    mode.noop.extend(await _turn(switch, mode, bench, STEADY, ["fetch"] * batch))
            namespace = await bench.namespace(f"create-{number}")
            await bench.servers(namespace, [f"s{i}-{m}" for i in range(create) for m in range(len(modes))])
            for index in range(create):
                for mode in _rotated(modes, number + index):
                    name = f"s{index}-{modes.index(mode)}"
                    mode.create.extend(await _turn(switch, mode, bench, namespace, [name]))
    finally:
        await api.close()


def run(*, rounds: int = ROUNDS, noop: int = NOOP_PASSES, create: int = CREATE_PASSES) -> list[Row]:
    """Measure every mode, taking turns; one Row per mode, "off" first."""
    switch = Switch()
    trace.set_tracer_provider(switch)
    if trace.get_tracer_provider() is not switch:
        raise RuntimeError("a global tracer provider was already installed in this process")
    modes = [build_mode(name, environ) for name, environ in MODES.items()]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-reconcile-") as workdir,
            LoopbackApi(rbac=False) as loopback,
        ):
            kubeconfig = loopback.write_kubeconfig(Path(workdir) / "kubeconfig")
            asyncio.run(measure(switch, modes, loopback, kubeconfig, rounds=rounds, noop=noop, create=create))
    finally:
        for mode in modes:
            if isinstance(mode.provider, TracerProvider):
                mode.provider.shutdown()
    for mode in modes:
        if (mode.name == "on, sampling 1") != bool(mode.noop_spans and mode.create_spans):
            raise RuntimeError(f"{mode.name!r} exported {mode.noop_spans + mode.create_spans} spans")
    return [
        Row(
            mode.name,
            statistics.median(mode.noop) * 1e6,
            statistics.median(mode.create) * 1e6,
            mode.noop_spans / len(mode.noop),
            mode.create_spans / len(mode.create),
        )
        for mode in modes
    ]


def render(rows: Sequence[Row]) -> str:
    off = rows[0]
    header = (
        f"{'mode':<16} {'no-op pass':>11} {'passes/s':>9} {'x off':>6}   "
        f"{'create pass':>11} {'passes/s':>9} {'x off':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        noop = f"{row.noop_us:>9.0f}us {1e6 / row.noop_us:>9.0f} {row.noop_us / off.noop_us:>6.2f}"
        create = f"{row.create_us:>9.0f}us {1e6 / row.create_us:>9.1f} {row.create_us / off.create_us:>6.2f}"
        lines.append(f"{row.mode:<16} {noop}   {create}")
    sampled = rows[-1]
    lines.append(
        f"spans per pass at sampling 1: no-op {sampled.noop_spans:.0f}, create {sampled.create_spans:.0f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, in_process: bool = False) -> None:
    """Parse `argv`, measure, print. Other modules (`python -m benchmarks`) get a child interpreter, because
    the global tracer provider this installs could be neither replaced nor removed in theirs."""
    if not in_process:
        command = [sys.executable, "-m", "benchmarks.bench_reconcile_tracing", *(argv or [])]
        subprocess.run(command, cwd=REPO, check=True, timeout=300)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"turns per mode (default {ROUNDS})")
    parser.add_argument(
        "--noop-passes", type=int, default=NOOP_PASSES, help=f"no-op passes per turn (default {NOOP_PASSES})"
    )
    parser.add_argument(
        "--create-passes",
        type=int,
        default=CREATE_PASSES,
        help=f"create passes per turn (default {CREATE_PASSES})",
    )
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    rows = run(rounds=arguments.rounds, noop=arguments.noop_passes, create=arguments.create_passes)
    print(render(rows))
    print(
        f"(median pass; {arguments.rounds} rounds of {arguments.noop_passes} no-op and "
        f"{arguments.create_passes} create passes per mode, taking turns; {time.monotonic() - started:.0f} s)"
    )


if __name__ == "__main__":
    main(in_process=True)

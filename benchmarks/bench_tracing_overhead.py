"""What tracing costs per call: off (no provider), on with sampling 0, on with sampling 1.

Run `python -m benchmarks.bench_tracing_overhead [--iterations N]`. Each mode times a function wrapped
in `telemetry.span()` (one span with three attributes) and a reconcile-shaped tree (a parent with four
children), best of several repeats, and prints a table in nanoseconds. Spans sampled in are handed to a
BatchSpanProcessor whose exporter discards them: the cost measured is the one the reconcile path pays,
not the network. Never writes files.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from toolhive import telemetry

ATTRIBUTES = {"k8s.namespace.name": "team-a", "k8s.object.name": "github", "outcome": "success"}


class DiscardingExporter(SpanExporter):
    """Counts and drops spans, so the benchmark measures the SDK, not a collector."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


@dataclasses.dataclass(frozen=True)
class Row:
    mode: str
    bare_ns: float
    span_ns: float
    tree_ns: float


def _work() -> int:
    return sum(range(8))


def _timed(call: Callable[[], object], iterations: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            call()
        best = min(best, (time.perf_counter_ns() - start) / iterations)
    return best


def _measure(mode: str, tracer: trace.Tracer | None, *, iterations: int, repeats: int) -> Row:
    def one_span() -> int:
        with telemetry.span("bench.call", ATTRIBUTES, tracer=tracer):
            return _work()

    def tree() -> None:
        with telemetry.span("toolhive.reconcile", ATTRIBUTES, tracer=tracer):
            for child in ("build", "apply.deployment", "apply.service", "status"):
                with telemetry.span(child, {"k8s.namespace.name": "team-a"}, tracer=tracer):
                    _work()

    bare = _timed(_work, iterations, repeats)
    return Row(mode, bare, _timed(one_span, iterations, repeats), _timed(tree, iterations, repeats))


def _provider(sampler: sampling.Sampler, *, queue: int) -> tuple[TracerProvider, DiscardingExporter]:
    exporter = DiscardingExporter()
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    # A queue deep enough for every span of the run, so none are dropped and all pay full price.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=queue, max_export_batch_size=512))
    return provider, exporter


def run(*, iterations: int = 10_000, repeats: int = 3) -> list[Row]:
    """Measure the three modes; tracing off uses the module's own fast path (no configure())."""
    assert not telemetry.is_enabled(), "run in a process where telemetry.configure() installed nothing"
    rows = [_measure("off (no provider)", None, iterations=iterations, repeats=repeats)]
    queue = iterations * repeats * 6
    for label, sampler in (("on, sampling 0", sampling.ALWAYS_OFF), ("on, sampling 1", sampling.ALWAYS_ON)):
        provider, exporter = _provider(sampler, queue=queue)
        try:
            rows.append(_measure(label, telemetry.tracer(provider), iterations=iterations, repeats=repeats))
        finally:
            provider.shutdown()
        if sampler is sampling.ALWAYS_ON and exporter.exported == 0:
            raise RuntimeError("sampling 1 exported no spans: the benchmark measured nothing")
    return rows


def render(rows: list[Row]) -> str:
    header = f"{'mode':<20} {'bare call':>10} {'1 span':>10} {'overhead':>10} {'5-span tree':>12}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.mode:<20} {row.bare_ns:>8.0f}ns {row.span_ns:>8.0f}ns "
            f"{row.span_ns - row.bare_ns:>8.0f}ns {row.tree_ns:>10.0f}ns"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=10_000, help="calls per repeat (default 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the best is kept (default 3)")
    arguments = parser.parse_args(argv)
    print(render(run(iterations=arguments.iterations, repeats=arguments.repeats)))


if __name__ == "__main__":
    main()

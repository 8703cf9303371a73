"""`make bench` = `python -m benchmarks`: every benchmark in turn, each bounded in time, printing tables.

Order: tracing overhead (per span, then per reconcile pass), API efficiency, watch streams (kopf vs
the multiplexer), the loopback API's own CPU per request, onboarding/revocation latency (10, 100, 1000
member namespaces), scale (1000 namespaces x 10 MCPServers). `--quick` runs small sizes (a few minutes
in all); `--only NAME` runs one. Never part of `make test`; the numbers go into benchmarks/README.md by hand.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

from benchmarks import (
    _harness,
    bench_api_efficiency,
    bench_kopf_vs_multiplexer,
    bench_loopback,
    bench_memory,
    bench_onboarding,
    bench_reconcile_tracing,
    bench_scale,
    bench_tracing_overhead,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument(
        "--only",
        choices=[
            "tracing",
            "reconcile-tracing",
            "efficiency",
            "kopf-vs-multiplexer",
            "loopback",
            "onboarding",
            "scale",
            "memory",
        ],
        help="run one",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    plan: list[tuple[str, Callable[[], None]]] = [
        ("tracing", lambda: bench_tracing_overhead.main(["--iterations", "2000" if quick else "20000"])),
        ("reconcile-tracing", lambda: bench_reconcile_tracing.main([])),
        ("efficiency", lambda: bench_api_efficiency.main([])),
        ("kopf-vs-multiplexer", lambda: bench_kopf_vs_multiplexer.main(["--sizes", "10"] if quick else [])),
        ("loopback", lambda: bench_loopback.main(["--watches", "400"] if quick else [])),
        (
            "onboarding",
            lambda: bench_onboarding.main(
                ["--sizes", "10,100", "--onboardings", "50", "--revocations", "20"] if quick else []
            ),
        ),
        (
            "scale",
            lambda: bench_scale.main(
                ["--namespaces", "100", "--servers", "10", "--idle", "10"] if quick else ["--budget", "900"]
            ),
        ),
        (
            "memory",
            lambda: bench_memory.main(["--namespaces", "100" if quick else "300", "--servers", "10"]),
        ),
    ]
    print(f"# toolhive-operator benchmarks ({_harness.machine()})\n", flush=True)
    for name, run in plan:
        if args.only and name != args.only:
            continue
        begin = time.monotonic()
        print(f"## {name}\n", flush=True)
        load = os.getloadavg()[0]
        run()
        after = os.getloadavg()[0]
        took = time.monotonic() - begin
        print(f"\n({name}: {took:.0f} s; load average {load:.1f} before, {after:.1f} after)\n", flush=True)


if __name__ == "__main__":
    main()

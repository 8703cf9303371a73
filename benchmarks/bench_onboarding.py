"""Onboarding and revocation latency at N existing member namespaces, against the floor of the same run.

`python -m benchmarks.bench_onboarding [--sizes 10,100,1000] [--onboardings 200] [--revocations 100]`.
Per size: a fresh loopback API with the chart installed; N labelled member namespaces (no MCPServers);
K unlabelled namespaces holding one MCPServer each. First the floor (`benchmarks/floor.py`: one watch,
one RoleBinding per event, official client) onboards K other namespaces one at a time; then discovery and
the operator (subprocesses, own tokens) start, converge, and the K namespaces are labelled one at a time:
label applied -> RoleBinding exists -> first object of the reconcile (its ServiceAccount) -> Deployment.
Then the first R are unlabelled: label removed -> operator released (annotation) -> RoleBinding gone.
Times are when this process sees each watch event. Prints one table per size, a summary and the CPU time
each process spent per onboarding and per revocation (from /proc, so independent of the machine's load).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _harness as h
from discovery import constants as discovery_constants
from discovery import kube
from toolhive import resources

FLOOR_LABEL = "bench.toolhive.dev/floor"
FLOOR_GRANT = "floor"


@dataclasses.dataclass
class Run:
    members: int
    samples: dict[str, list[float]]
    setup: dict[str, float]
    watches: dict[str, int]
    rss: dict[str, float]
    failures: int
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    """CPU milliseconds per onboarding and per revocation, by process (load-independent)."""


STAGES = (
    ("floor: label -> RoleBinding", "floor.rb"),
    ("label -> RoleBinding", "rb"),
    ("label -> reconcile starts (first write)", "sa"),
    ("label -> Deployment created", "deploy"),
    ("floor: label removed -> RoleBinding gone", "floor.gone"),
    ("label removed -> operator released", "released"),
    ("label removed -> RoleBinding gone", "gone"),
)


async def measure(
    members: int, *, onboardings: int, revocations: int, profile_dir: Path | None = None
) -> Run:
    samples: dict[str, list[float]] = {key: [] for _, key in STAGES}
    setup: dict[str, float] = {}
    failures = 0
    async with h.Bench(grace=30.0) as bench:
        api = bench.api
        with h.phase(f"{members} members: create namespaces"):
            begin = time.monotonic()
            await bench.create_namespaces([f"m-{i}" for i in range(members)], labelled=True)
            for i in range(members):
                await api.patch(kube.NAMESPACES, f"m-{i}", {"metadata": {"labels": {FLOOR_LABEL: "true"}}})
            await bench.create_namespaces([f"f-{i}" for i in range(onboardings)], labelled=False)
            await bench.create_namespaces([f"o-{i}" for i in range(onboardings)], labelled=False, servers=1)
            setup["create namespaces (s)"] = time.monotonic() - begin

        clock = h.EventClock(api)

        def rolebinding_key(kind: str, obj: kube.Body) -> Any:
            meta = obj["metadata"]
            if kind == "ADDED":
                return ("rb", meta["namespace"], meta["name"])
            if kind == "DELETED":
                return ("gone", meta["namespace"], meta["name"])
            if (meta.get("annotations") or {}).get(discovery_constants.RELEASED_ANNOTATION) == "true":
                return ("released", meta["namespace"])
            return None

        clock.track(resources.ROLEBINDINGS, rolebinding_key)
        clock.track(
            resources.SERVICEACCOUNTS,
            lambda kind, obj: ("sa", obj["metadata"]["namespace"]) if kind == "ADDED" else None,
        )
        clock.track(
            resources.DEPLOYMENTS,
            lambda kind, obj: ("deploy", obj["metadata"]["namespace"]) if kind == "ADDED" else None,
        )
        await clock.ready()

        with h.phase("floor"):
            floor = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.floor", str(bench.kubeconfig), FLOOR_LABEL],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert floor.stdout is not None
                ready = await asyncio.to_thread(floor.stdout.readline)
                if ready.strip() != "ready":
                    raise RuntimeError(f"floor did not start: {ready!r}")
                for i in range(onboardings):
                    name = f"f-{i}"
                    begin = time.monotonic()
                    await api.patch(kube.NAMESPACES, name, {"metadata": {"labels": {FLOOR_LABEL: "true"}}})
                    samples["floor.rb"].append(await clock.wait(("rb", name, FLOOR_GRANT)) - begin)
                for i in range(revocations):
                    name = f"f-{i}"
                    begin = time.monotonic()
                    await api.patch(kube.NAMESPACES, name, {"metadata": {"labels": {FLOOR_LABEL: None}}})
                    samples["floor.gone"].append(await clock.wait(("gone", name, FLOOR_GRANT)) - begin)
            finally:
                floor.terminate()
                floor.wait()
                if floor.stdout is not None:
                    floor.stdout.close()

        with h.phase("discovery and operator: start and converge"):
            begin = time.monotonic()
            bench.start_processes(profile_dir=profile_dir)
            setup["members converged (s)"] = await bench.wait_members(members, timeout=900)
            await bench.wait_quiet(seconds=1.0)
            setup["quiet (s)"] = time.monotonic() - begin
        watches = bench.open_watches()

        with h.phase(f"{onboardings} onboardings, {revocations} revocations"):
            cpu: dict[str, float] = {}
            before = {name: h.cpu_seconds(p.pid) for name, p in bench.processes.items()}
            for i in range(onboardings):
                name = f"o-{i}"
                begin = time.monotonic()
                await api.patch(kube.NAMESPACES, name, {"metadata": {"labels": {h.LABEL: "true"}}})
                try:
                    samples["rb"].append(await clock.wait(("rb", name, h.GRANT), timeout=20) - begin)
                    samples["sa"].append(await clock.wait(("sa", name), timeout=20) - begin)
                    samples["deploy"].append(await clock.wait(("deploy", name), timeout=20) - begin)
                except TimeoutError:
                    failures += 1
                    bench.check_alive()
            middle = {name: h.cpu_seconds(p.pid) for name, p in bench.processes.items()}
            for process, spent in before.items():
                cpu[f"{process} per onboarding"] = 1000 * (middle[process] - spent) / max(1, onboardings)
            for i in range(revocations):
                name = f"o-{i}"
                begin = time.monotonic()
                await api.patch(kube.NAMESPACES, name, {"metadata": {"labels": {h.LABEL: None}}})
                try:
                    samples["released"].append(await clock.wait(("released", name), timeout=40) - begin)
                    samples["gone"].append(await clock.wait(("gone", name, h.GRANT), timeout=40) - begin)
                except TimeoutError:
                    failures += 1
                    bench.check_alive()
            after = {name: h.cpu_seconds(p.pid) for name, p in bench.processes.items()}
            for process, spent in middle.items():
                cpu[f"{process} per revocation"] = 1000 * (after[process] - spent) / max(1, revocations)
        rss = {name: h.peak_rss_mib(p.pid) for name, p in bench.processes.items()}
        await clock.close()
        bench.stop_processes()  # profiles are written on exit
    return Run(members, samples, setup, watches, rss, failures, cpu)


def render(run: Run) -> str:
    floor = {key: h.Percentiles.of(run.samples[key]) for key in ("floor.rb", "floor.gone")}
    rows = []
    for title, key in STAGES:
        p = h.Percentiles.of(run.samples[key])
        base = floor["floor.gone"] if key in ("released", "gone", "floor.gone") else floor["floor.rb"]
        ratio = f"{p.p50 / base.p50:.1f}x / {p.p99 / base.p99:.1f}x" if base.count else "-"
        rows.append((title, p.count, h.ms(p.p50), h.ms(p.p90), h.ms(p.p99), h.ms(p.max), ratio))
    out = [f"### {run.members} existing member namespaces", ""]
    out.append(h.table(("stage", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "vs floor p50 / p99"), rows))
    watch_total = sum(run.watches.values())
    out.append("")
    out.append(
        "setup: "
        + ", ".join(f"{k} {v:.1f}" for k, v in run.setup.items())
        + f"; open watches {watch_total} ({', '.join(f'{k} {v}' for k, v in sorted(run.watches.items()))})"
        + "; peak RSS "
        + ", ".join(f"{k} {v:.0f} MiB" for k, v in run.rss.items())
        + (f"; {run.failures} timed out" if run.failures else "")
    )
    out.append("")
    out.append("CPU ms: " + ", ".join(f"{key} {value:.1f}" for key, value in run.cpu.items()))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000", help="member namespace counts (comma-separated)")
    parser.add_argument("--onboardings", type=int, default=200)
    parser.add_argument("--revocations", type=int, default=100)
    parser.add_argument("--profile", type=Path, help="run the processes under cProfile; stats go here")
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",") if s):
        profile_dir = args.profile / str(size) if args.profile else None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
        run = asyncio.run(
            measure(size, onboardings=args.onboardings, revocations=args.revocations, profile_dir=profile_dir)
        )
        print(render(run), flush=True)
        print(flush=True)
        for name in sorted(profile_dir.glob("*.prof") if profile_dir else []):
            summary = h.profile_summary(name)
            print(f"#### profile of {name.stem} ({size} members), by own time\n\n```\n{summary}```\n")


if __name__ == "__main__":
    main()

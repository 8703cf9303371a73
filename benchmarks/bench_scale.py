"""Scale: N member namespaces x M MCPServers, cold start to converged, peak RSS, steady-state CPU.

`python -m benchmarks.bench_scale [--namespaces 1000] [--servers 10] [--budget 600] [--idle 30]`.
Everything exists before the processes start (labelled namespaces, MCPServers); discovery and the operator
then start cold as subprocesses. Converged: every MCPServer carries a status for its generation and has its
Deployment (no workload simulator here, so phases stay Pending, as on a cluster without nodes). Then
`--idle` seconds with no changes measure steady CPU. Peak RSS is VmHWM of each process. The loopback API
runs in its own process (`TOOLHIVE_BENCH_API=thread` puts it in this one); its CPU is reported too, because on
a small machine it is part of the bottleneck, and so is the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import _harness as h


@dataclasses.dataclass
class Result:
    namespaces: int
    servers: int
    create_seconds: float
    members_seconds: float | None
    converged_seconds: float | None
    converged_fraction: float
    settled_seconds: float | None
    peak_rss: dict[str, float]
    idle_cpu: dict[str, float]
    converge_cpu: dict[str, float]
    requests: int
    load: tuple[float, float]  # 1-minute load average when converging started and when it ended


async def measure(
    namespaces: int, servers: int, *, budget: float, idle: float, profile_dir: Path | None = None
) -> Result:
    total = namespaces * servers
    async with h.Bench(grace=30.0) as bench:
        api = bench.api
        with h.phase(f"create {namespaces} namespaces x {servers} MCPServers"):
            begin = time.monotonic()
            await bench.create_namespaces(
                [f"s-{i}" for i in range(namespaces)], labelled=True, servers=servers
            )
            create_seconds = time.monotonic() - begin

        convergence = h.Convergence(api, total=total)
        await convergence.start()
        requests_before = bench.request_count()
        own_before = _own_cpu()
        api_before = bench.api_cpu_seconds()
        load_before = os.getloadavg()[0]
        with h.phase("cold start to converged"):
            begin = time.monotonic()
            bench.start_processes(profile_dir=profile_dir)
            cpu_before = {name: h.cpu_seconds(p.pid) for name, p in bench.processes.items()}
            members_seconds: float | None = None
            converged: float | None = None
            last_report = begin
            while time.monotonic() - begin < budget:
                await asyncio.sleep(0.25)
                bench.check_alive()
                if (
                    members_seconds is None
                    and int((await bench.membership()).get("memberCount") or 0) == namespaces
                ):
                    members_seconds = time.monotonic() - begin
                if convergence.fraction >= 1:
                    converged = time.monotonic() - begin
                    break
                if time.monotonic() - last_report > 15:
                    last_report = time.monotonic()
                    print(
                        f"     {last_report - begin:.0f}s: {convergence.progress()}",
                        flush=True,
                    )
            elapsed = time.monotonic() - begin
            converge_cpu = {
                name: (h.cpu_seconds(p.pid) - cpu_before[name]) / elapsed * 100
                for name, p in bench.processes.items()
            }
            _add_own_cpu(converge_cpu, bench, own_before, api_before, elapsed)
            load_after = os.getloadavg()[0]
        fraction = convergence.fraction
        requests = bench.request_count() - requests_before
        idle_cpu: dict[str, float] = {}
        settled: float | None = None
        if converged is not None:
            with h.phase("settle: the operator's queue drains (follow-up passes that change nothing)"):
                await bench.wait_quiet(seconds=2.0, timeout=300)
                operator = bench.processes["toolhive-operator"]
                calm = 0
                # Settled: two 1-s windows in a row with < 5% of a core (a measuring window, not a wait for
                # an event: the follow-up passes make no requests, so only the CPU shows they are done).
                while calm < 2 and time.monotonic() - begin < budget + 300:
                    before_cpu = h.cpu_seconds(operator.pid)
                    await asyncio.sleep(1.0)
                    calm = calm + 1 if h.cpu_seconds(operator.pid) - before_cpu < 0.05 else 0
                settled = time.monotonic() - begin - 2.0
            with h.phase(f"{idle:.0f}s idle"):
                before = {name: h.cpu_seconds(p.pid) for name, p in bench.processes.items()}
                own, api_own = _own_cpu(), bench.api_cpu_seconds()
                await asyncio.sleep(idle)
                idle_cpu = {
                    name: (h.cpu_seconds(p.pid) - before[name]) / idle * 100
                    for name, p in bench.processes.items()
                }
                _add_own_cpu(idle_cpu, bench, own, api_own, idle)
        peak = {name: h.peak_rss_mib(p.pid) for name, p in bench.processes.items()}
        api_pid = bench.api_pid()
        if api_pid is not None:
            peak["loopback API (test bed)"] = h.peak_rss_mib(api_pid)
        await convergence.close()
        bench.stop_processes()  # profiles are written on exit
    return Result(
        namespaces,
        servers,
        create_seconds,
        members_seconds,
        converged,
        fraction,
        settled,
        peak,
        idle_cpu,
        converge_cpu,
        requests,
        (load_before, load_after),
    )


def _add_own_cpu(
    into: dict[str, float], bench: h.Bench, own_before: float, api_before: float | None, seconds: float
) -> None:
    """The loopback API's and this driver's CPU shares (one row when the API runs in this process)."""
    api_now = bench.api_cpu_seconds()
    if api_before is None or api_now is None:
        into["loopback API + bench driver"] = (_own_cpu() - own_before) / seconds * 100
        return
    into["loopback API"] = (api_now - api_before) / seconds * 100
    into["bench driver"] = (_own_cpu() - own_before) / seconds * 100


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def render(result: Result) -> str:
    total = result.namespaces * result.servers
    converged = (
        f"{result.converged_seconds:.1f} s"
        if result.converged_seconds is not None
        else f"not within budget ({result.converged_fraction:.0%} done)"
    )
    rows = [
        (
            "objects created before start",
            f"{result.namespaces} namespaces, {total} MCPServers in {result.create_seconds:.1f} s",
        ),
        (
            "discovery: all namespaces members",
            f"{result.members_seconds:.1f} s" if result.members_seconds else "-",
        ),
        ("cold start -> converged (every status and Deployment written)", converged),
        (
            "cold start -> settled (operator queue drained, < 5% CPU)",
            f"{result.settled_seconds:.1f} s" if result.settled_seconds is not None else "-",
        ),
        (
            "API requests until converged",
            f"{result.requests} ({result.requests / max(total, 1):.1f} per MCPServer)",
        ),
    ]
    if result.converged_seconds:
        rate = result.requests / result.converged_seconds
        rows.append(("API requests/s while converging", f"{rate:.0f}"))
        api_share = result.converge_cpu.get("loopback API")
        if api_share is not None and result.requests:
            per_request = api_share / 100 * result.converged_seconds / result.requests * 1000
            rows.append(("loopback API CPU per request", f"{per_request:.2f} ms"))
    load = f"{result.load[0]:.1f} / {result.load[1]:.1f}"
    rows.append(("load average (1 min) at start / end of converging", load))
    for name, value in result.peak_rss.items():
        rows.append((f"peak RSS {name}", f"{value:.0f} MiB"))
    for name, value in result.converge_cpu.items():
        rows.append((f"CPU while converging, {name}", f"{value:.0f}% of one core"))
    for name, value in result.idle_cpu.items():
        rows.append((f"steady CPU (no changes), {name}", f"{value:.1f}% of one core"))
    title = f"### Scale: {result.namespaces} member namespaces x {result.servers} MCPServers\n\n"
    return title + h.table(("measure", "value"), rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--budget", type=float, default=600.0, help="give up converging after this many s")
    parser.add_argument("--idle", type=float, default=30.0, help="steady-state CPU window (s)")
    parser.add_argument("--profile", type=Path, help="run the processes under cProfile; stats go here")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(
        measure(args.namespaces, args.servers, budget=args.budget, idle=args.idle, profile_dir=args.profile)
    )
    print(render(result), flush=True)
    for name in sorted(args.profile.glob("*.prof") if args.profile else []):
        print(f"\n#### profile of {name.stem}, by own time\n\n```\n{h.profile_summary(name)}```")


if __name__ == "__main__":
    main()

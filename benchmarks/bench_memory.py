"""Memory: where the operator's resident memory goes at N member namespaces x M MCPServers.

`python -m benchmarks.bench_memory [--namespaces 100] [--servers 10] [--trace 1] [--budget 900]`.
The loopback API (RBAC on, chart in discovery mode) gets N labelled namespaces with M MCPServers each;
discovery runs as usual and the operator runs converged (every MCPServer has its status and Deployment)
in a child process of this module, which on SIGUSR1 writes a report: VmRSS/VmHWM (and RSS right after
imports), deep sizes of the informer caches per kind (bytes per cached object), the apply cache and the
work queue, the watch connections, and with `--trace` tracemalloc's top lines and files (the
tracemalloc bookkeeping itself inflates RSS, so RSS and tracemalloc come from separate runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Only the standard library at module level: the child measures the operator's own imports.

_WATCH_FILES = ("aiohttp", "asyncio", "ssl", "socket", "selectors", "multidict", "yarl")


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """sys.getsizeof of `obj` and everything it holds (containers and instance attributes), once each."""
    seen = set() if seen is None else seen
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.append(vars(item))
        elif not isinstance(item, type):  # __slots__ records (apply.Applied)
            slots = getattr(type(item), "__slots__", ())
            stack.extend(getattr(item, slot) for slot in slots if hasattr(item, slot))
    return total


# -- the child: the operator plus a report on SIGUSR1 -------------------------------------------------


def _status_kib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _report(*, import_rss: float, base_rss: float, trace: int) -> dict[str, Any]:
    import gc
    import tracemalloc

    from toolhive import apply, multiplexer

    gc.collect()
    report: dict[str, Any] = {
        "rss_mib": _status_kib("VmRSS"),
        "hwm_mib": _status_kib("VmHWM"),
        "rss_interpreter_mib": base_rss,
        "rss_after_imports_mib": import_rss,
    }
    if trace and tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")]
        )
        report["traced_mib"] = sum(stat.size for stat in snapshot.statistics("filename")) / 2**20
        report["top_lines"] = [
            (str(stat.traceback), stat.size, stat.count) for stat in snapshot.statistics("lineno")[:25]
        ]
        if trace > 1:  # who allocated what is still alive: the whole stack of the top sites
            report["top_stacks"] = [
                (
                    " <- ".join(
                        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in stat.traceback
                    ),
                    stat.size,
                    stat.count,
                )
                for stat in snapshot.statistics("traceback")[:15]
            ]
        files = snapshot.statistics("filename")
        report["top_files"] = [(str(stat.traceback), stat.size, stat.count) for stat in files[:20]]
        watch_bytes = sum(
            stat.size for stat in files if any(f"/{name}" in str(stat.traceback) for name in _WATCH_FILES)
        )
        report["network_and_loop_bytes"] = watch_bytes
    muxes = [o for o in gc.get_objects() if isinstance(o, multiplexer.Multiplexer)]
    appliers = [o for o in gc.get_objects() if isinstance(o, apply.Applier)]
    kinds: dict[str, dict[str, float]] = {}
    watches = 0
    seen: set[int] = set()
    for mux in muxes:
        for served in mux._served.values():
            for plural, informer in served.informers.items():
                watches += 1
                entry = kinds.setdefault(plural, {"objects": 0, "bytes": 0})
                entry["objects"] += len(informer)
                entry["bytes"] += deep_size(informer._cache, seen)
    for entry in kinds.values():
        entry["bytes_per_object"] = entry["bytes"] / entry["objects"] if entry["objects"] else 0
    report["caches"] = kinds
    report["watches"] = watches
    report["apply_cache"] = {
        "entries": sum(len(a._applied) for a in appliers),
        "bytes": sum(deep_size(a._applied, set()) for a in appliers),
    }
    # Other per-object state of the reconcile side, by attribute (whatever containers it holds now).
    others: dict[str, float] = {}
    for owner in [*appliers, *(o for o in gc.get_objects() if type(o).__name__ == "Snapshots")]:
        for attribute, value in vars(owner).items():
            container = isinstance(value, dict | list | set) or hasattr(value, "maxsize")  # cachetools
            if attribute != "_applied" and container and len(value):
                name = f"{type(owner).__name__}.{attribute}"
                others[name] = others.get(name, 0) + deep_size(value, set())
    report["other_state"] = others
    report["queue_bytes"] = sum(deep_size(mux.queue, set()) for mux in muxes)
    report["queue_keys"] = sum(mux.queue.depth for mux in muxes)
    report["tasks"] = len(asyncio.all_tasks())
    return report


def child(report_path: Path, *, trace: int) -> None:
    """Run the operator (settings from the environment) until SIGTERM; SIGUSR1 writes the report."""
    base_rss = _status_kib("VmRSS")
    import tracemalloc

    if trace:
        tracemalloc.start(trace)
    from toolhive import operator, settings

    import_rss = _status_kib("VmRSS")
    config = settings.Settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def write() -> None:
            data = _report(import_rss=import_rss, base_rss=base_rss, trace=trace)
            tmp = report_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.rename(report_path)

        loop.add_signal_handler(signal.SIGUSR1, write)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await operator.run(config, stop=stop)

    asyncio.run(main())


# -- the parent: cluster, discovery, the child, convergence --------------------------------------------


async def measure(namespaces: int, servers: int, *, trace: int, budget: float) -> dict[str, Any]:
    from benchmarks import _harness as h
    from toolhive.testing import install, processes

    total = namespaces * servers
    async with h.Bench(grace=30.0) as bench:
        with h.phase(f"create {namespaces} namespaces x {servers} MCPServers"):
            await bench.create_namespaces(
                [f"m-{i}" for i in range(namespaces)], labelled=True, servers=servers
            )
        convergence = h.Convergence(bench.api, total=total)
        await convergence.start()
        bench.start_processes(only=[install.DISCOVERY])
        assert bench.installation is not None
        report_path = bench.workdir / "memory-report.json"
        log_path = bench.workdir / "logs" / "operator-memory.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = processes.environment(bench.installation, install.OPERATOR, extra=bench.operator_env)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        command = [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(report_path)]
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                [*command, "--trace", str(trace)], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        bench.processes[install.OPERATOR] = processes.Process(install.OPERATOR, popen, log_path)
        with h.phase("operator cold start to converged"):
            begin = time.monotonic()
            while convergence.fraction < 1:
                if time.monotonic() - begin > budget:
                    raise TimeoutError(f"not converged in {budget}s: {convergence.progress()}")
                bench.check_alive()
                await asyncio.sleep(0.5)
            converged = time.monotonic() - begin
        with h.phase("settle (no API requests for 2 s)"):
            await bench.wait_quiet(seconds=2.0, timeout=600)
        popen.send_signal(signal.SIGUSR1)
        await h.wait_until(
            lambda: asyncio.sleep(0, result=report_path.exists()), timeout=120, what="memory report"
        )
        report: dict[str, Any] = json.loads(report_path.read_text())
        report.update(namespaces=namespaces, servers=servers, converged_seconds=converged)
        report["load"] = os.getloadavg()[0]
        await convergence.close()
    return report


def render(report: dict[str, Any]) -> str:
    from benchmarks import _harness as h

    mib = 2**20
    caches = report["caches"]
    cached = sum(entry["bytes"] for entry in caches.values())
    watches = max(report["watches"], 1)
    rest = (
        report["rss_mib"]
        - report["rss_after_imports_mib"]
        - (cached + report["apply_cache"]["bytes"] + sum(report.get("other_state", {}).values())) / mib
        - report["queue_bytes"] / mib
    )
    rows: list[tuple[str, str]] = [
        ("operator RSS now / peak (VmHWM)", f"{report['rss_mib']:.0f} / {report['hwm_mib']:.0f} MiB"),
        (
            "RSS: interpreter / after imports",
            f"{report['rss_interpreter_mib']:.0f} / {report['rss_after_imports_mib']:.0f} MiB",
        ),
        ("converged after", f"{report['converged_seconds']:.1f} s (load {report['load']:.1f})"),
        ("informer caches (deep size)", f"{cached / mib:.1f} MiB"),
    ]
    for plural, entry in sorted(caches.items()):
        rows.append(
            (
                f"  {plural}",
                f"{entry['objects']:.0f} objects, {entry['bytes'] / mib:.1f} MiB, "
                f"{entry['bytes_per_object']:.0f} B each",
            )
        )
    apply_cache = report["apply_cache"]
    per_entry = apply_cache["bytes"] / apply_cache["entries"] if apply_cache["entries"] else 0
    rows += [
        (
            "apply cache (toolhive/apply.py)",
            f"{apply_cache['entries']} entries, {apply_cache['bytes'] / mib:.1f} MiB, {per_entry:.0f} B each",
        ),
        *(
            (f"  {name}", f"{size / mib:.1f} MiB")
            for name, size in sorted(report.get("other_state", {}).items(), key=lambda item: -item[1])
        ),
        ("work queue", f"{report['queue_bytes'] / mib:.2f} MiB, {report.get('queue_keys', 0)} keys queued"),
        ("watches (one connection and one task each)", f"{report['watches']}; {report['tasks']} tasks"),
        (
            "RSS in none of the above, per watch (upper bound: connections, tasks, fragmentation)",
            f"{rest:.0f} MiB, {rest * mib / watches / 1024:.1f} KiB per watch",
        ),
    ]
    if "network_and_loop_bytes" in report:
        rows += [
            ("tracemalloc total", f"{report['traced_mib']:.0f} MiB"),
            (
                "tracemalloc in aiohttp/asyncio/ssl/socket, per watch",
                f"{report['network_and_loop_bytes'] / mib:.1f} MiB, "
                f"{report['network_and_loop_bytes'] / watches / 1024:.1f} KiB",
            ),
        ]
    title = f"### Memory: {report['namespaces']} member namespaces x {report['servers']} MCPServers\n\n"
    text = title + h.table(("measure", "value"), rows)
    for key, heading in (("top_files", "file"), ("top_lines", "line"), ("top_stacks", "stack")):
        if key in report:
            text += f"\n\ntracemalloc by {heading} (KiB, allocations):\n\n"
            text += "\n".join(
                f"  {size / 1024:10.0f} {count:8d}  {where}" for where, size, count in report[key]
            )
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames (0: off, RSS only)")
    parser.add_argument("--budget", type=float, default=900.0, help="give up converging after this many s")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, trace=args.trace)
        return
    report = asyncio.run(measure(args.namespaces, args.servers, trace=args.trace, budget=args.budget))
    print(render(report), flush=True)


if __name__ == "__main__":
    main()

"""API efficiency: requests each process makes per MCPServer create, spec update, no-op resync, join, leave.

`python -m benchmarks.bench_api_efficiency [--resync 2]`. Counted from the loopback API's request log by
ServiceAccount, between a reset and the moment every process has been quiet for a second. The workload
simulator (its own user, not counted) plays the Deployment controller, so a create goes all the way to
`Ready`. The operator resyncs every `--resync` seconds here, so the no-op resync row covers real passes.
The resync spreads its namespaces over the period (one turn every period / namespaces), so "quiet" means
no request for a quarter of the period.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence

from benchmarks import _harness as h
from discovery import kube
from toolhive import resources
from toolhive.testing import workloads

USERS = {h.OPERATOR_USER: "operator", h.DISCOVERY_USER: "discovery"}
WRITES = ("create", "update", "patch", "delete", "deletecollection")


@dataclasses.dataclass
class Row:
    action: str
    counts: dict[str, collections.Counter[tuple[str, str]]]  # process -> (verb, resource) -> count
    note: str = ""


def tally(bench: h.Bench) -> dict[str, collections.Counter[tuple[str, str]]]:
    out: dict[str, collections.Counter[tuple[str, str]]] = {
        name: collections.Counter() for name in USERS.values()
    }
    for request in bench.loopback.requests:
        process = USERS.get(request.user)
        if process is not None:
            out[process][(request.verb, request.resource)] += 1
    return out


async def counted(
    bench: h.Bench, action: Callable[[], Awaitable[None]], *, quiet: float = 1.0
) -> dict[str, collections.Counter[str]]:
    await bench.wait_quiet(seconds=quiet)
    bench.loopback.requests.reset()
    await action()
    await bench.wait_quiet(seconds=quiet)
    return tally(bench)


async def measure(*, resync: float) -> list[Row]:
    rows: list[Row] = []
    async with h.Bench(grace=30.0, operator_env={"TOOLHIVE_OPERATOR__RESYNC_SECONDS": str(resync)}) as bench:
        api = bench.api
        token = bench.loopback.add_user("workload-simulator", ("system:masters",))
        sim_api = await kube.Api.connect(
            kubeconfig=str(bench.loopback.write_kubeconfig(bench.workdir / "sim.kubeconfig", token=token))
        )
        simulator = asyncio.create_task(workloads.WorkloadSimulator(sim_api).run())
        try:
            await bench.create_namespaces(["eff"], labelled=True)
            bench.start_processes()
            await bench.wait_members(1, timeout=60)

            async def create() -> None:
                await api.create(resources.MCPSERVERS, h.mcpserver("eff", "fetch"), namespace="eff")

                async def ready() -> bool:
                    server = await api.get(resources.MCPSERVERS, "fetch", namespace="eff")
                    return (server.get("status") or {}).get("phase") == "Ready"

                await h.wait_until(ready, timeout=30, what="Ready")

            rows.append(Row("MCPServer create (to Ready)", await counted(bench, create, quiet=resync / 4)))

            async def update() -> None:
                patch = {"spec": {"args": ["--verbose"]}}
                await api.patch(resources.MCPSERVERS, "fetch", patch, namespace="eff")

            rows.append(Row("spec update", await counted(bench, update, quiet=resync / 4)))

            async def idle() -> None:
                await asyncio.sleep(resync * 3 + 0.5)

            rows.append(Row("no-op resync", await counted(bench, idle, quiet=resync / 4), note="3 resyncs"))
            await bench.create_namespaces(["joiner"], labelled=False)

            async def join() -> None:
                await api.patch(kube.NAMESPACES, "joiner", {"metadata": {"labels": {h.LABEL: "true"}}})
                await bench.wait_members(2, timeout=30)

            rows.append(Row("namespace join (empty)", await counted(bench, join, quiet=resync / 4)))

            async def leave() -> None:
                await api.patch(kube.NAMESPACES, "joiner", {"metadata": {"labels": {h.LABEL: None}}})
                await bench.wait_members(1, timeout=60)

                async def gone() -> bool:
                    return await api.get_or_none(resources.ROLEBINDINGS, h.GRANT, namespace="joiner") is None

                await h.wait_until(gone, timeout=60, what="grant revoked")

            rows.append(Row("namespace leave (empty)", await counted(bench, leave, quiet=resync / 4)))
            await api.create(resources.MCPSERVERS, h.mcpserver("joiner", "fetch"), namespace="joiner")

            async def join_with_server() -> None:
                begin = time.monotonic()
                await api.patch(kube.NAMESPACES, "joiner", {"metadata": {"labels": {h.LABEL: "true"}}})

                async def ready() -> bool:
                    server = await api.get(resources.MCPSERVERS, "fetch", namespace="joiner")
                    return (server.get("status") or {}).get("phase") == "Ready"

                await h.wait_until(ready, timeout=30, what="Ready after join")
                del begin

            rows.append(
                Row(
                    "namespace join (1 MCPServer, to Ready)",
                    await counted(bench, join_with_server, quiet=resync / 4),
                )
            )

            async def leave_with_server() -> None:
                await api.patch(kube.NAMESPACES, "joiner", {"metadata": {"labels": {h.LABEL: None}}})

                async def gone() -> bool:
                    return await api.get_or_none(resources.ROLEBINDINGS, h.GRANT, namespace="joiner") is None

                await h.wait_until(gone, timeout=60, what="grant revoked")

            rows.append(
                Row(
                    "namespace leave (1 MCPServer)", await counted(bench, leave_with_server, quiet=resync / 4)
                )
            )
        finally:
            simulator.cancel()
            await asyncio.gather(simulator, return_exceptions=True)
            await sim_api.close()
    return rows


def render(rows: list[Row]) -> str:
    table_rows = []
    for row in rows:
        cells: list[object] = [row.action + (f" ({row.note})" if row.note else "")]
        for process in ("operator", "discovery"):
            counts = row.counts[process]
            writes = sum(n for (verb, _), n in counts.items() if verb in WRITES)
            reads = sum(n for (verb, _), n in counts.items() if verb in ("get", "list"))
            watches = sum(n for (verb, _), n in counts.items() if verb == "watch")
            detail = ", ".join(f"{verb} {res} {n}" for (verb, res), n in sorted(counts.items()))
            cells += [writes, reads, watches, detail or "-"]
        table_rows.append(cells)
    headers = (
        "action",
        "operator writes",
        "reads",
        "watches opened",
        "operator requests (verb resource count)",
        "discovery writes",
        "reads",
        "watches opened",
        "discovery requests",
    )
    notes = (
        "\nWatch requests are counted when opened (the operator opens 4 per namespace it joins, after 4 "
        "lists, and ends them when it leaves). Lease writes are leader election renewals."
    )
    return h.table(headers, table_rows) + "\n" + notes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resync", type=float, default=2.0, help="operator resync period for this run (s)")
    args = parser.parse_args(argv)
    print("### API efficiency (requests per action, by process)\n")
    print(render(asyncio.run(measure(resync=args.resync))), flush=True)


if __name__ == "__main__":
    main()

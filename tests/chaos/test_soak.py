"""Chaos soak: two replicas of each process survive random operations, API faults and kills, and converge.

The chart is installed in discovery mode; discovery and the operator run as two replicas each (their own
tokens, leader election on a 3 s lease). A seeded driver labels, creates and deletes namespaces and
MCPServers, injects 409/429/500/503 answers, drops watches, adds latency and SIGKILLs or SIGTERMs replicas
(both of one kind at once too). Then it quiesces and polls the invariant checker until it passes.

The short variant runs in `make test`; the long one is opt-in: `pytest -m soak` or TOOLHIVE_SOAK_SECONDS.
TOOLHIVE_SOAK_SEED replays a run. On a real cluster there is no fault injection (kills still happen) and
MCPServers need only reach Pending (nothing runs their images here).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from discovery import kube
from tests import cluster as cluster_mod
from tests.chaos import invariants, soak
from toolhive.testing import install

SHORT_CHAOS_SECONDS = 12.0
LONG_CHAOS_SECONDS = float(os.environ.get("TOOLHIVE_SOAK_SECONDS") or 180)


def run_soak(
    cluster: cluster_mod.Cluster,
    installation: install.Installation,
    *,
    chaos_seconds: float,
    converge_timeout: float,
    logdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> str:
    seed = int(os.environ.get("TOOLHIVE_SOAK_SEED") or random.randrange(2**32))
    with capsys.disabled():
        print(f"\nsoak seed={seed} (replay: TOOLHIVE_SOAK_SEED={seed})", flush=True)
    driver = soak.Soak(cluster, installation, seed=seed, logdir=logdir, faults=True)
    with driver.running():
        driver.seed_namespaces(4)
        started = time.monotonic()
        driver.run_chaos(chaos_seconds)
        chaos = time.monotonic() - started
        driver.quiesce()
        quiet = time.monotonic()
        target = invariants.Target.from_env(
            installation.env(install.OPERATOR),
            expect_ready=cluster.is_loopback,
            namespaces=frozenset(driver.created),
        )
        last: list[invariants.Violation] = []
        state: list[str] = []

        def holds() -> bool:
            violations, described = asyncio.run(_check(cluster, target))
            last[:], state[:] = violations, [described]
            return not last

        try:
            cluster_mod.poll(holds, timeout=converge_timeout, interval=0.5, message="invariants")
        except cluster_mod.PollTimeout:
            violations = "\n".join(f"  {v}" for v in last)
            pytest.fail(
                f"seed {seed}: invariants still broken {converge_timeout:.0f}s after quiescence:\n"
                f"{violations}\nrefused requests: {driver.rejected()}\n"
                f"{driver.tally.summary(seed=seed, seconds=chaos, converged=float('nan'))}\n"
                f"{driver.logs()}\nevery replica's full log: {logdir}"
            )
        converged = time.monotonic() - quiet
        summary = driver.tally.summary(seed=seed, seconds=chaos, converged=converged)
        rejected = "; ".join(driver.rejected()) or "none"
        with capsys.disabled():
            print(f"{summary}\nfinal state: {state[0]}\nrefused requests: {rejected}", flush=True)
        crashes = driver.unexpected_exits()
        assert not crashes, "replicas exited without being signalled:\n" + "\n".join(crashes)
        return summary


async def _check(
    cluster: cluster_mod.Cluster, target: invariants.Target
) -> tuple[list[invariants.Violation], str]:
    api = await kube.Api.connect(kubeconfig=str(cluster.kubeconfig))
    try:
        snapshot = await invariants.gather(api, target)
        return invariants.evaluate(snapshot, target), invariants.describe(snapshot, target)
    finally:
        await api.close()
        await asyncio.sleep(0)


def test_a_short_soak_with_faults_and_kills_converges_to_the_invariants(
    cluster: cluster_mod.Cluster,
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    installation = install_chart(soak.VALUES)
    run_soak(
        cluster,
        installation,
        chaos_seconds=SHORT_CHAOS_SECONDS,
        converge_timeout=40,
        logdir=tmp_path / "logs",
        capsys=capsys,
    )


@pytest.mark.soak
def test_a_long_soak_with_faults_and_kills_converges_to_the_invariants(
    request: pytest.FixtureRequest,
    cluster: cluster_mod.Cluster,
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "soak" not in (request.config.getoption("markexpr") or "") and not os.environ.get(
        "TOOLHIVE_SOAK_SECONDS"
    ):
        pytest.skip("long soak is opt-in: pytest -m soak, or set TOOLHIVE_SOAK_SECONDS")
    installation = install_chart(soak.VALUES)
    run_soak(
        cluster,
        installation,
        chaos_seconds=LONG_CHAOS_SECONDS,
        converge_timeout=90,
        logdir=tmp_path / "logs",
        capsys=capsys,
    )

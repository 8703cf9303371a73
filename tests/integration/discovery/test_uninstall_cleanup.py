"""`toolhive-operator discovery cleanup` (the chart's pre-delete hook): no grant and no finalizer left behind.

With discovery (leader-elected) and the operator still running, as during `helm uninstall`: the cleanup takes
discovery's Lease so it stops granting, publishes every member as draining, the operator releases its
finalizers and annotates the grants, and the cleanup deletes them. Without an operator the cleanup is
bounded by the grace period. Run twice it finds nothing and exits 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

import discovery
from discovery import cleanup, kube, leader
from tests import cluster as cluster_mod
from tests.integration import discovery_harness, harness
from toolhive import constants, operator, settings

LEASE_RENEW = 0.5


def lease_for(found: discovery_harness.Discovery, identity: str) -> leader.LeaseConfig:
    return leader.LeaseConfig(
        name=f"{found.name}-discovery",
        namespace=found.rbac.release_namespace,
        identity=identity,
        lease_seconds=5.0,
        renew_seconds=LEASE_RENEW,
        retry_seconds=LEASE_RENEW,
    )


def run_cleanup(
    found: discovery_harness.Discovery, *, grace: float, timeout: float, lease: bool = True
) -> cleanup.Report:
    config = dataclasses.replace(found.config, grace_seconds=grace)
    kubeconfig = str(found.rbac.kubeconfig())

    async def main() -> cleanup.Report:
        api = await kube.Api.connect(kubeconfig=kubeconfig)
        try:
            return await cleanup.cleanup(
                api,
                config,
                lease=lease_for(found, "uninstall") if lease else None,
                timeout_seconds=timeout,
                poll_seconds=0.2,
            )
        finally:
            await api.close()

    return asyncio.run(main())


@pytest.fixture
def elected_discovery(
    admin: harness.Admin, discovery_rbac: discovery_harness.DiscoveryRbac, label_key: str
) -> Iterator[discovery_harness.Discovery]:
    """Discovery serving a fresh object under leader election, as the chart runs it."""
    found = discovery_harness.Discovery(
        admin, discovery_rbac, spec={"selectors": [discovery_harness.selector(label_key)]}
    ).create()
    kubeconfig = str(discovery_rbac.kubeconfig())

    async def main(stop: asyncio.Event) -> None:
        api = await kube.Api.connect(kubeconfig=kubeconfig)

        async def work() -> None:
            await discovery.run(found.config, api=api, stop=asyncio.Event())

        elector = asyncio.create_task(leader.LeaderElector(api, lease_for(found, "discovery-0")).run(work))
        try:
            await asyncio.wait([elector, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        finally:
            elector.cancel()
            await asyncio.gather(elector, return_exceptions=True)
            await api.close()

    found.process = harness.Background(main, name="elected discovery").start()
    try:
        yield found
    finally:
        found.stop()
        found.delete()


@pytest.fixture
def operator_following(
    cluster: cluster_mod.Cluster, elected_discovery: discovery_harness.Discovery
) -> Iterator[harness.Background]:
    """The operator in discovery mode, with its own token, following `elected_discovery`'s object."""
    rbac = elected_discovery.rbac.operator
    rbac.allow_membership_read(elected_discovery.name)
    config = settings.Settings(
        rbac={"scope": "namespace", "watch_namespaces": []},
        discovery={"enabled": True, "resource_name": elected_discovery.name},
        observability={"health_port": 0, "metrics_port": 0},
        operator={"resync_seconds": 300},
        pod_namespace=rbac.release_namespace,
    )
    kubeconfig = str(rbac.kubeconfig())

    async def main(stop: asyncio.Event) -> None:
        await operator.run(config, kubeconfig=kubeconfig, stop=stop)

    with harness.running(main, name="operator") as process:
        yield process


def finalizers(admin: harness.Admin, namespace: str, name: str) -> list[str]:
    return list(((admin.get_mcpserver(namespace, name) or {}).get("metadata") or {}).get("finalizers") or [])


def test_cleanup_revokes_every_grant_after_the_operator_released_its_finalizers(
    admin: harness.Admin,
    elected_discovery: discovery_harness.Discovery,
    operator_following: harness.Background,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
) -> None:
    teams = {namespaces.create("un", **{label_key: "on"}) for _ in range(2)}
    elected_discovery.wait_converged(teams, within=teams, timeout=30)
    team = min(teams)
    admin.create_mcpserver(team, "fetch", transport="stdio")
    cluster_mod.poll(
        lambda: constants.FINALIZER in finalizers(admin, team, "fetch"),
        timeout=20,
        message="the operator serves the MCPServer (finalizer added)",
    )

    # A grace far beyond the run time: every grant must go through the operator's release.
    report = run_cleanup(elected_discovery, grace=120, timeout=40)

    assert report.clean and report.lease_held
    assert sorted(report.released) == sorted(teams) and report.forced == []
    assert elected_discovery.managed().keys() & teams == set()
    assert constants.FINALIZER not in finalizers(admin, team, "fetch")
    status = elected_discovery.status()
    assert (status["members"], status["draining"]) == ([], [])
    revoked = elected_discovery.events(involved=team, reason="Revoked")
    assert any("revoked on uninstall" in event["message"] for event in revoked)
    # Discovery stood down: a newly labelled namespace is not granted while the cleanup holds the lease.
    late = namespaces.create("late", **{label_key: "on"})
    deadline = time.monotonic() + 4 * LEASE_RENEW + 1
    while time.monotonic() < deadline:
        assert late not in elected_discovery.managed(), "discovery re-granted during uninstall"
        time.sleep(0.2)
    assert operator_following.alive
    # The hold is bounded: one lease duration after the cleanup, discovery leads again and grants.
    cluster_mod.poll(
        lambda: late in elected_discovery.granted({late}),
        timeout=20,
        message="discovery takes its lease back once the hold expires",
    )


def test_cleanup_without_an_operator_is_bounded_by_the_grace_period_and_idempotent(
    discovery_rbac: discovery_harness.DiscoveryRbac,
    admin: harness.Admin,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
) -> None:
    found = discovery_harness.Discovery(
        admin, discovery_rbac, spec={"selectors": [discovery_harness.selector(label_key)]}
    )
    with discovery_harness.serving(found):
        team = namespaces.create("gr", **{label_key: "on"})
        found.wait_converged({team}, within={team}, timeout=30)
        found.stop()  # crashed or already gone: nobody re-grants, nobody releases

        started = time.monotonic()
        report = run_cleanup(found, grace=1.0, timeout=20, lease=False)
        assert report.clean and report.forced == [team] and report.released == []
        assert time.monotonic() - started < 10
        assert team not in found.managed()

        # Run again, as the CLI (the hook may be retried): nothing to do, exit 0.
        result = cli_cleanup(found)
        assert result.returncode == 0, result.stdout
        assert '"left": []' in result.stdout


def test_cleanup_gives_up_with_exit_1_naming_what_is_left(
    discovery_rbac: discovery_harness.DiscoveryRbac,
    admin: harness.Admin,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
) -> None:
    found = discovery_harness.Discovery(
        admin, discovery_rbac, spec={"selectors": [discovery_harness.selector(label_key)]}
    )
    with discovery_harness.serving(found):
        team = namespaces.create("gu", **{label_key: "on"})
        found.wait_converged({team}, within={team}, timeout=30)
        found.stop()
        # The grace (30 s) is longer than the timeout and no operator releases: bounded failure.
        result = cli_cleanup(found, "--timeout-seconds", "1")
        assert result.returncode == 1
        assert f'"left": ["{team}"]' in result.stdout
        assert team in found.managed(), "a binding not yet released is not deleted before the grace"
        # Given up: the Lease is handed back at once, so discovery resumes without waiting for a hold.
        coordination = kubernetes.client.CoordinationV1Api(admin.client)
        lease = coordination.read_namespaced_lease(
            f"{found.name}-discovery", discovery_rbac.release_namespace
        )
        assert not lease.spec.holder_identity


def test_cleanup_with_the_wrong_identity_fails_with_exit_2_and_the_reason(
    discovery_rbac: discovery_harness.DiscoveryRbac, admin: harness.Admin, operator_kubeconfig: Path
) -> None:
    found = discovery_harness.Discovery(admin, discovery_rbac, spec={})
    result = cli_cleanup(found, "--timeout-seconds", "5", kubeconfig=operator_kubeconfig)
    assert result.returncode == 2, result.stderr
    assert "discovery cleanup failed" in result.stderr and "403" in result.stderr


def cli_cleanup(
    found: discovery_harness.Discovery, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    kubeconfig = kubeconfig or found.rbac.kubeconfig()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOOLHIVE_", "OTEL_"))} | {
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": found.rbac.release_namespace,
        "POD_NAME": "uninstall-hook",
        "TOOLHIVE_DISCOVERY__RESOURCE_NAME": found.name,
        "TOOLHIVE_DISCOVERY__CLUSTER_ROLE": found.rbac.operator.cluster_role,
        "TOOLHIVE_OBSERVABILITY__LOG_FORMAT": "text",
        "TOOLHIVE_LEADER_ELECTION__ENABLED": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "toolhive.cli", "discovery", "cleanup", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

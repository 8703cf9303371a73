"""`toolhive-operator discovery` as a process: environment settings, KUBECONFIG honoured, SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import kubernetes
import pytest

from tests.integration import discovery_harness, harness


@pytest.fixture
def idle_discovery(
    admin: harness.Admin, discovery_rbac: discovery_harness.DiscoveryRbac, label_key: str
) -> Iterator[discovery_harness.Discovery]:
    """The object only: the process under test is the CLI, not the in-process runner."""
    found = discovery_harness.Discovery(
        admin, discovery_rbac, spec={"selectors": [discovery_harness.selector(label_key)]}
    ).create()
    try:
        yield found
    finally:
        found.delete()


@pytest.mark.parametrize("elect", [False, True], ids=["single replica", "with leader election"])
def test_the_discovery_command_grants_and_stops_on_sigterm(
    idle_discovery: discovery_harness.Discovery,
    discovery_rbac: discovery_harness.DiscoveryRbac,
    namespaces: discovery_harness.Namespaces,
    admin: harness.Admin,
    label_key: str,
    elect: bool,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOOLHIVE_", "OTEL_"))} | {
        "KUBECONFIG": str(discovery_rbac.kubeconfig()),
        "POD_NAMESPACE": discovery_rbac.release_namespace,
        "POD_NAME": "discovery-cli-test",
        "TOOLHIVE_DISCOVERY__RESOURCE_NAME": idle_discovery.name,
        "TOOLHIVE_DISCOVERY__CLUSTER_ROLE": discovery_rbac.operator.cluster_role,
        "TOOLHIVE_OBSERVABILITY__METRICS_PORT": "0",
        "TOOLHIVE_OBSERVABILITY__HEALTH_PORT": "0",
        "TOOLHIVE_OBSERVABILITY__LOG_FORMAT": "text",
        "TOOLHIVE_LEADER_ELECTION__ENABLED": "true" if elect else "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "toolhive.cli", "discovery"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        team = namespaces.create("cli", **{label_key: "on"})
        idle_discovery.wait_converged({team}, within={team}, timeout=30)
        binding = idle_discovery.managed()[team]
        assert binding["subjects"][0]["namespace"] == discovery_rbac.release_namespace
        if elect:
            assert lease_holder(admin, discovery_rbac, idle_discovery) == "discovery-cli-test"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"namespace {team} selected" in output
    if elect:
        assert not lease_holder(admin, discovery_rbac, idle_discovery), "the lease is released on SIGTERM"


def lease_holder(
    admin: harness.Admin, rbac: discovery_harness.DiscoveryRbac, found: discovery_harness.Discovery
) -> str | None:
    coordination = kubernetes.client.CoordinationV1Api(admin.client)
    lease = coordination.read_namespaced_lease(f"{found.name}-discovery", rbac.release_namespace)
    return lease.spec.holder_identity or None

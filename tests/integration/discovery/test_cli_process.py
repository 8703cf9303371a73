"""`toolhive-operator discovery` as a process: environment settings, KUBECONFIG honoured, SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

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


def test_the_discovery_command_grants_and_stops_on_sigterm(
    idle_discovery: discovery_harness.Discovery,
    discovery_rbac: discovery_harness.DiscoveryRbac,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
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
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"namespace {team} selected" in output

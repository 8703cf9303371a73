"""Uninstall in discovery mode: the chart's pre-delete hook leaves no grant and no finalizer behind.

The chart is installed in discovery mode, discovery and the operator run with the chart's environment and
their own tokens, a labelled team has an MCPServer. Then the hook runs exactly as its Job would: the Job's
rendered command and environment, discovery's ServiceAccount token, while both processes still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes

from tests.e2e.conftest import Kube, logs_of, wait_for
from toolhive.testing import install, processes

FINALIZER = "mcpserver.toolhive.stacklok.dev/finalizer"
GRANT_FINALIZER = "discovery.toolhive.stacklok.dev/grant"
HOOK = "toolhive-discovery-uninstall"
DISCOVERY_MODE = {
    "operator": {"rbac": {"scope": "namespace", "discovery": {"enabled": True, "releaseGraceSeconds": 20}}}
}


def run_hook(installation: install.Installation) -> subprocess.CompletedProcess[str]:
    """The hook Job's container, run locally with discovery's token (what the Job's pod would do)."""
    job = next(doc for doc in installation.documents if doc["kind"] == "Job")
    assert job["metadata"]["name"] == HOOK
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    pod = job["spec"]["template"]["spec"]
    identity = installation.identities[pod["serviceAccountName"]]
    chart_env = install.container_env(
        installation.documents, HOOK, namespace=installation.namespace, pod_name=f"{HOOK}-x", kind="Job"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOOLHIVE_", "OTEL_"))}
    env |= chart_env | {"KUBECONFIG": str(identity.kubeconfig), "TOOLHIVE_OBSERVABILITY__LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "-m", "toolhive.cli", *pod["containers"][0]["args"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=float(job["spec"]["activeDeadlineSeconds"]),
        check=False,
    )


def test_the_uninstall_hook_revokes_every_grant_after_the_operator_released_its_finalizers(
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    installation = install_chart(DISCOVERY_MODE)
    teams = [make_namespace("un-a", labelled=True), make_namespace("un-b", labelled=True)]
    kube.create_mcpserver(teams[0])
    started = run_processes(installation)
    for team in teams:
        wait_for(lambda t=team: kube.rolebinding(t), what=f"{team} granted", started=started)
    wait_for(
        lambda: (
            FINALIZER
            in ((kube.mcpserver(teams[0], "fetch") or {}).get("metadata") or {}).get("finalizers", [])
        ),
        what="the operator serves the MCPServer",
        started=started,
    )

    result = run_hook(installation)

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{logs_of(started)}"
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(teams) <= set(report["released"]), report  # with any other labelled namespace of the cluster
    assert report["revokedAfterGrace"] == [] and report["left"] == []
    for team in teams:
        assert kube.rolebinding(team) is None
    server = kube.mcpserver(teams[0], "fetch")
    assert server is not None and FINALIZER not in (server["metadata"].get("finalizers") or [])
    membership = kube.membership()
    assert membership.get("members") == [] and membership.get("draining") == []
    assert all(process.alive() for process in started.values()), logs_of(started)
    # The hook keeps discovery's Lease for one lease duration (Helm deletes discovery meanwhile). Here the
    # installation outlives the test's uninstall, so stop discovery and drop its Lease for the next test.
    started["toolhive-discovery"].stop()
    leases = kubernetes.client.CoordinationV1Api(kube.client)
    leases.delete_namespaced_lease("toolhive-operator-discovery", installation.namespace)

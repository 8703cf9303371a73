"""Journey 1: label a namespace to onboard a team; remove the label to revoke, with no stuck finalizer.

The chart is installed in discovery mode; discovery and the operator run as their own ServiceAccounts.
Runs unchanged against a real cluster (TOOLHIVE_TEST_KUBECONFIG), where the chart is `helm install`ed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.e2e.conftest import Kube, logs_of, wait_for
from toolhive.testing import install, processes

FINALIZER = "mcpserver.toolhive.stacklok.dev/finalizer"
DISCOVERY_MODE = {
    "operator": {"rbac": {"scope": "namespace", "discovery": {"enabled": True, "releaseGraceSeconds": 20}}}
}


def test_labelling_a_namespace_onboards_it_and_unlabelling_revokes_it_without_stuck_finalizers(
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    installation = install_chart(DISCOVERY_MODE)
    team_a = make_namespace("team-a", labelled=True)
    team_b = make_namespace("team-b")
    kube.create_mcpserver(team_a)
    kube.create_mcpserver(team_b)
    started = run_processes(installation)

    def deployed(namespace: str) -> bool:
        return kube.deployment(namespace, "fetch") is not None

    wait_for(lambda: deployed(team_a), what="team-a reconciled", started=started)
    status = wait_for(
        lambda: (kube.mcpserver(team_a, "fetch") or {}).get("status"), what="status", started=started
    )
    assert status["phase"] in ("Pending", "Running", "Ready"), status
    assert FINALIZER in kube.mcpserver(team_a, "fetch")["metadata"]["finalizers"]  # type: ignore[index]
    membership = kube.membership()
    assert team_a in membership["members"] and team_b not in membership.get("members", [])
    assert kube.rolebinding(team_b) is None
    assert not deployed(team_b) and not (kube.mcpserver(team_b, "fetch") or {}).get("status")

    kube.label(team_b, "true")
    wait_for(lambda: kube.rolebinding(team_b), what="team-b granted", started=started)
    wait_for(lambda: deployed(team_b), what="team-b reconciled", started=started)

    kube.label(team_a, None)
    wait_for(lambda: kube.rolebinding(team_a) is None, what="team-a revoked", started=started)
    server = kube.mcpserver(team_a, "fetch")
    assert server is not None and FINALIZER not in (server["metadata"].get("finalizers") or [])
    assert team_a not in kube.membership().get("members", [])
    kube.delete_mcpserver(team_a)
    wait_for(
        lambda: kube.mcpserver(team_a, "fetch") is None, what="team-a's MCPServer deleted", started=started
    )
    assert all(p.alive() for p in started.values()), logs_of(started)

"""What the soak found about revokes the operator did not acknowledge within releaseGraceSeconds.

1. Fixed: the operator is down while a member namespace is deleted. Discovery used to revoke the grant once
   `releaseGraceSeconds` passed, stranding the MCPServer's finalizer (the namespace stayed Terminating for
   good). Now the grace period does not revoke the grant of a terminating namespace while other finalizers
   (the namespace controller's `NamespaceFinalizersRemaining`) still hold it; the operator, once back,
   releases the namespace and it finishes deleting.
2. Fixed: an operator that was alive but could not release in time (API errors) then met 403 on every
   release attempt and, because joins and releases share one loop, never served a namespace labelled later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests import cluster as cluster_mod
from tests.chaos import soak
from tests.e2e.conftest import Kube, wait_for
from toolhive import constants
from toolhive.testing import install, processes

GRACE_SECONDS = 2
VALUES = {
    "operator": {
        "rbac": {
            "scope": "namespace",
            "discovery": {"enabled": True, "releaseGraceSeconds": GRACE_SECONDS},
        }
    }
}


def test_a_namespace_deleted_during_an_operator_outage_is_not_left_terminating(
    cluster: cluster_mod.Cluster,
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
    tmp_path: Path,
) -> None:
    installation = install_chart(VALUES)
    team = make_namespace("outage", labelled=True)
    kube.create_mcpserver(team)
    started = run_processes(installation)
    wait_for(
        lambda: (
            constants.FINALIZER
            in ((kube.mcpserver(team, "fetch") or {}).get("metadata") or {}).get("finalizers", [])
        ),
        what="the operator put its finalizer on the MCPServer",
        started=started,
    )

    started[install.OPERATOR].popen.kill()  # a crash (or both replicas gone), not a graceful stop
    started[install.OPERATOR].popen.wait(timeout=10)
    kube.core.delete_namespace(team)
    deadline = time.monotonic() + GRACE_SECONDS + 2
    wait_for(lambda: time.monotonic() > deadline, what="the grace period passed", started=started)
    assert kube.rolebinding(team) is not None, "discovery revoked while the operator's finalizer remains"

    back = processes.start(installation, install.OPERATOR, logdir=tmp_path / "restarted")
    try:
        wait_for(
            lambda: _gone(kube, team),
            what=f"namespace {team} finished terminating after the operator came back",
            started={**started, "restarted operator": back},
            timeout=8,
        )
    finally:
        back.stop()
        strip_finalizer(kube, team)  # no-op when the test passes; a regression must not strand the session


def _gone(kube: Kube, namespace: str) -> bool:
    try:
        kube.core.read_namespace(namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.mark.loopback_only("injects API faults to keep the operator from releasing in time")
def test_an_operator_that_missed_the_grace_period_still_serves_new_members(
    cluster: cluster_mod.Cluster,
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    """A revoke the operator did not acknowledge in time must not wedge its membership loop."""
    assert cluster.loopback is not None
    installation = install_chart(VALUES)
    leaving = make_namespace("leaving", labelled=True)
    kube.create_mcpserver(leaving)
    started = run_processes(installation)
    wait_for(
        lambda: (
            constants.FINALIZER
            in ((kube.mcpserver(leaving, "fetch") or {}).get("metadata") or {}).get("finalizers", [])
        ),
        what="the operator put its finalizer on the MCPServer",
        started=started,
    )
    operator_user = "system:serviceaccount:{0.namespace}:{0.name}".format(
        installation.identities[install.OPERATOR]
    )
    # The operator cannot write the MCPServer there (so it cannot release) until discovery gave up on it.
    cluster.loopback.faults.add(
        status=500, path=f"/namespaces/{leaving}/mcpservers/", count=None, user=operator_user
    )
    kube.label(leaving, None)
    try:
        wait_for(lambda: kube.rolebinding(leaving) is None, what="revoked after the grace", started=started)
    finally:
        cluster.loopback.faults.clear()

    joining = make_namespace("joining", labelled=True)
    kube.create_mcpserver(joining)
    try:
        wait_for(
            lambda: kube.deployment(joining, "fetch") is not None,
            what=f"the operator serves {joining}, labelled after the forced revoke",
            started=started,
        )
    finally:
        strip_finalizer(kube, leaving)  # stranded by the forced revoke: the known limit above


def strip_finalizer(kube: Kube, namespace: str, name: str = "fetch") -> None:
    """Remove the operator's finalizer by hand (admin), as after a revoke the operator could not answer."""
    try:
        kube.custom.patch_namespaced_custom_object(
            soak.GROUP, soak.VERSION, namespace, "mcpservers", name, {"metadata": {"finalizers": None}}
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise

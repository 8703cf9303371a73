"""Two operator replicas with leader election: only the leader acts; the standby takes over when it goes."""

from __future__ import annotations

import kubernetes

from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.operator.conftest import OperatorFactory


def lease_holder(admin: harness.Admin, namespace: str) -> str:
    coordination = kubernetes.client.CoordinationV1Api(admin.client)
    try:
        lease = coordination.read_namespaced_lease("toolhive-operator", namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


def test_only_the_leader_acts_and_the_standby_takes_over_on_shutdown(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory, operator_rbac: harness.OperatorRbac
) -> None:
    if not _has_lease_role(admin, operator_rbac.release_namespace):
        operator_rbac.allow_leases()
    election = {"enabled": True, "lease_duration_seconds": 3, "renew_seconds": 0.5}
    first = start_operator([namespace], leader_election=election, pod_name="replica-a")
    cluster_mod.poll(lambda: lease_holder(admin, first.rbac.release_namespace) == "replica-a", timeout=20)
    second = start_operator([namespace], bind=False, leader_election=election, pod_name="replica-b")

    admin.create_mcpserver(namespace, "github", transport="sse")
    cluster_mod.poll(
        lambda: admin.exists(admin.apps.read_namespaced_deployment, "github", namespace), timeout=20
    )
    assert lease_holder(admin, first.rbac.release_namespace) == "replica-a"

    first.process.stop()  # graceful: releases the lease, so the standby need not wait for expiry
    cluster_mod.poll(
        lambda: lease_holder(admin, first.rbac.release_namespace) == "replica-b",
        timeout=10,
        message="standby took the lease",
    )
    admin.create_mcpserver(namespace, "fetch", transport="streamable-http")
    cluster_mod.poll(
        lambda: admin.exists(admin.apps.read_namespaced_deployment, "fetch", namespace),
        timeout=20,
        message="the new leader reconciles",
    )
    assert second.process.alive


def _has_lease_role(admin: harness.Admin, namespace: str) -> bool:
    return admin.exists(admin.rbac.read_namespaced_role, "toolhive-operator-leases", namespace)

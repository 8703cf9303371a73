"""The operator following published membership: a namespace joining and leaving, without a restart.

Discovery's side is played by the test as admin (it publishes `status.members`/`status.draining` and owns
the grant RoleBinding), so these tests pin down the operator's half of the handshake on their own:
existing MCPServers are reconciled on join; on leave finalizers are released, the grant is annotated
`released`, and nothing more is written there; a later delete is not stuck; no 403 along the way.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import kubernetes
import pytest

from discovery import constants as discovery_constants
from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.operator.conftest import OperatorFactory, RunningOperator
from toolhive import constants

PLURAL = "namespacediscoveries"


class Membership:
    """Publishes a NamespaceDiscovery status the way discovery does."""

    def __init__(self, admin: harness.Admin, name: str) -> None:
        self.admin = admin
        self.name = name
        admin.custom.create_cluster_custom_object(
            harness.GROUP,
            "v1alpha1",
            PLURAL,
            {
                "apiVersion": f"{harness.GROUP}/v1alpha1",
                "kind": "NamespaceDiscovery",
                "metadata": {"name": name},
            },
        )

    def publish(self, *, members: list[str], draining: list[str] = ()) -> None:  # type: ignore[assignment]
        status = {
            "members": sorted(members),
            "pending": [],
            "draining": sorted(draining),
            "memberCount": len(members),
            "pendingCount": 0,
            "drainingCount": len(draining),
        }
        self.admin.custom.patch_cluster_custom_object_status(
            harness.GROUP, "v1alpha1", PLURAL, self.name, {"status": status}
        )

    def delete(self) -> None:
        try:
            self.admin.custom.delete_cluster_custom_object(harness.GROUP, "v1alpha1", PLURAL, self.name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def membership(admin: harness.Admin, operator_rbac: harness.OperatorRbac) -> Iterator[Membership]:
    published = Membership(admin, f"test-{secrets.token_hex(3)}")
    # The chart grants this read before the operator starts; granting it later races its first list (403).
    operator_rbac.allow_membership_read(published.name)
    try:
        yield published
    finally:
        published.delete()


def start_following(start_operator: OperatorFactory, membership: Membership) -> RunningOperator:
    return start_operator(
        [],
        discovery={
            "enabled": True,
            "resource_name": membership.name,
            "rolebinding_name": "toolhive-operator",
        },
    )


def test_a_joining_namespace_gets_its_existing_mcpservers_reconciled(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory, membership: Membership
) -> None:
    admin.create_mcpserver(namespace, "early", transport="sse")
    running = start_following(start_operator, membership)
    running.rbac.bind(namespace)  # discovery's grant
    membership.publish(members=[namespace])
    cluster_mod.poll(
        lambda: admin.exists(admin.apps.read_namespaced_deployment, "early", namespace),
        timeout=20,
        message="existing MCPServer reconciled after the join",
    )
    server = admin.get_mcpserver(namespace, "early")
    assert server is not None and constants.FINALIZER in server["metadata"]["finalizers"]


def test_a_leaving_namespace_is_released_and_left_alone(
    admin: harness.Admin,
    cluster: cluster_mod.Cluster,
    namespace: str,
    start_operator: OperatorFactory,
    membership: Membership,
) -> None:
    running = start_following(start_operator, membership)
    running.rbac.bind(namespace)
    membership.publish(members=[namespace])
    admin.create_mcpserver(namespace, "github", transport="stdio")
    cluster_mod.poll(
        lambda: (
            constants.FINALIZER
            in ((admin.get_mcpserver(namespace, "github") or {})["metadata"].get("finalizers") or [])
        ),
        timeout=20,
        message="finalizer added while a member",
    )

    membership.publish(members=[], draining=[namespace])

    def released() -> bool:
        grant = admin.read(admin.rbac.read_namespaced_role_binding, "toolhive-operator", namespace) or {}
        annotations = grant.get("metadata", {}).get("annotations") or {}
        return annotations.get(discovery_constants.RELEASED_ANNOTATION) == "true"

    cluster_mod.poll(released, timeout=20, message="grant annotated released")
    server = admin.get_mcpserver(namespace, "github")
    assert server is not None and constants.FINALIZER not in (server["metadata"].get("finalizers") or [])

    # Discovery revokes the grant; the namespace is no longer the operator's business.
    admin.rbac.delete_namespaced_role_binding("toolhive-operator", namespace)
    if cluster.loopback is not None:
        cluster.loopback.requests.reset()
    admin.create_mcpserver(namespace, "late")
    admin.delete_mcpserver(namespace, "github")
    cluster_mod.poll(
        lambda: admin.get_mcpserver(namespace, "github") is None, timeout=10, message="delete not stuck"
    )
    late = admin.get_mcpserver(namespace, "late")
    assert late is not None and not late.get("status") and not late["metadata"].get("finalizers")
    if cluster.loopback is not None:
        log = cluster.loopback.requests
        assert log.count(user=running.user, namespace=namespace) == 0, "no requests after leaving"


@pytest.mark.loopback_only("reads the request log")
def test_following_membership_causes_no_forbidden_answers(
    admin: harness.Admin,
    cluster: cluster_mod.Cluster,
    start_operator: OperatorFactory,
    membership: Membership,
) -> None:
    assert cluster.loopback is not None
    joined = [cluster.create_namespace("m") for _ in range(3)]
    cluster.loopback.requests.reset()  # judge only this test's requests
    try:
        running = start_following(start_operator, membership)
        for namespace in joined:
            admin.create_mcpserver(namespace, "server")
        # Grants appear before membership lists them, as discovery does it.
        for namespace in joined:
            running.rbac.bind(namespace)
        membership.publish(members=joined)
        for namespace in joined:
            cluster_mod.poll(
                lambda ns=namespace: admin.exists(admin.apps.read_namespaced_deployment, "server", ns),
                timeout=20,
            )
        membership.publish(members=joined[:1], draining=joined[1:])
        for namespace in joined[1:]:
            cluster_mod.poll(
                lambda ns=namespace: (
                    not ((admin.get_mcpserver(ns, "server") or {})["metadata"].get("finalizers"))
                ),
                timeout=20,
            )
        forbidden = [
            (r.verb, r.path)
            for r in cluster.loopback.requests
            if r.user == running.user and r.status == 403 and (r.namespace in joined or not r.namespace)
        ]
        assert forbidden == []
    finally:
        for namespace in joined:
            cluster.delete_namespace(namespace)

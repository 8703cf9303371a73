"""Discovery's own token, RBAC enforced: it may bind the operator's ClusterRole and nothing else."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.integration import discovery_harness, harness


@pytest.fixture(scope="module")
def discovery_kubeconfig(discovery_rbac: discovery_harness.DiscoveryRbac) -> Path:
    return discovery_rbac.kubeconfig()


@pytest.fixture
def as_discovery(discovery_kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(discovery_kubeconfig))
    try:
        yield client
    finally:
        client.close()


def binding_to(
    role: str, *, kind: str = "ClusterRole", subject_namespace: str = "default"
) -> dict[str, object]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"probe-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": subject_namespace}],
    }


def status_of(call: object) -> int:
    assert callable(call)
    try:
        call()
    except kubernetes.client.ApiException as exc:
        return int(exc.status)
    return 200


@pytest.fixture(scope="module")
def modest_role(admin: harness.Admin) -> Iterator[str]:
    """A ClusterRole weaker than the operator's, yet not the one discovery may bind."""
    name = f"probe-{secrets.token_hex(3)}"
    admin.rbac.create_cluster_role(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        }
    )
    try:
        yield name
    finally:
        admin.rbac.delete_cluster_role(name)


@pytest.mark.parametrize("which", ["cluster-admin", "a weaker ClusterRole"])
def test_discovery_cannot_bind_any_other_cluster_role(
    as_discovery: kubernetes.client.ApiClient,
    namespaces: discovery_harness.Namespaces,
    modest_role: str,
    which: str,
) -> None:
    role = "cluster-admin" if which == "cluster-admin" else modest_role
    target = namespaces.create("lp")
    rbac = kubernetes.client.RbacAuthorizationV1Api(as_discovery)
    assert status_of(lambda: rbac.create_namespaced_role_binding(target, binding_to(role))) == 403


def test_discovery_can_bind_the_operator_cluster_role(
    as_discovery: kubernetes.client.ApiClient,
    namespaces: discovery_harness.Namespaces,
    discovery_rbac: discovery_harness.DiscoveryRbac,
) -> None:
    target = namespaces.create("lp")
    rbac = kubernetes.client.RbacAuthorizationV1Api(as_discovery)
    body = binding_to(discovery_rbac.operator.cluster_role)
    assert status_of(lambda: rbac.create_namespaced_role_binding(target, body)) == 200


def test_discovery_cannot_rebind_the_operator_role_to_itself_at_cluster_scope(
    as_discovery: kubernetes.client.ApiClient, discovery_rbac: discovery_harness.DiscoveryRbac
) -> None:
    rbac = kubernetes.client.RbacAuthorizationV1Api(as_discovery)
    body = binding_to(discovery_rbac.operator.cluster_role)
    body["kind"] = "ClusterRoleBinding"
    assert status_of(lambda: rbac.create_cluster_role_binding(body)) == 403


@pytest.mark.parametrize(
    "what",
    [
        "read secrets",
        "create a role",
        "edit a namespace",
        "edit the discovery spec",
        "write leases elsewhere",
    ],
)
def test_discovery_holds_nothing_beyond_its_table(
    as_discovery: kubernetes.client.ApiClient,
    namespaces: discovery_harness.Namespaces,
    admin: harness.Admin,
    what: str,
) -> None:
    target = namespaces.create("lp")
    core = kubernetes.client.CoreV1Api(as_discovery)
    rbac = kubernetes.client.RbacAuthorizationV1Api(as_discovery)
    custom = kubernetes.client.CustomObjectsApi(as_discovery)
    coordination = kubernetes.client.CoordinationV1Api(as_discovery)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "probe"},
        "rules": [],
    }
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "probe"},
        "spec": {},
    }
    calls = {
        "read secrets": lambda: core.list_namespaced_secret(target),
        "create a role": lambda: rbac.create_namespaced_role(target, role),
        "edit a namespace": lambda: core.patch_namespace(target, {"metadata": {"labels": {"x": "y"}}}),
        "edit the discovery spec": lambda: custom.patch_cluster_custom_object(
            discovery_harness.GROUP, discovery_harness.VERSION, discovery_harness.PLURAL, "any", {"spec": {}}
        ),
        "write leases elsewhere": lambda: coordination.create_namespaced_lease(target, lease),
    }
    assert status_of(calls[what]) == 403

"""The authorizer's cache of resolved rules never outlives an RBAC write: the next request sees it.

The loopback API caches each (user, namespace)'s resolved rules until a ClusterRole or
ClusterRoleBinding changes, or a RoleBinding of that namespace with a subject matching the user (before
or after the write), or a Role such a binding references. A real API server's
authorizer reads informers, so a grant takes a moment there; these assert the loopback's immediacy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube
from tests.conformance.test_rbac_http import (
    RBAC_V1,
    Rbac,
    cluster_role,
    created,
    role,
    role_binding,
    rule,
    sa_subject,
)

pytestmark = pytest.mark.loopback_only("a real API server applies RBAC writes after an informer delay")


@pytest.fixture
def rbac(kube: RawKube, cluster: cluster_mod.Cluster, namespace: str) -> Iterator[Rbac]:
    helper = Rbac(kube, cluster, namespace)
    yield helper
    for path in reversed(helper.cleanup):
        kube.delete(path)


@pytest.fixture
def other_namespace(cluster: cluster_mod.Cluster) -> Iterator[str]:
    name = cluster.create_namespace("t")
    try:
        yield name
    finally:
        cluster.delete_namespace(name)


def _status(client: RawKube, namespace: str, resource: str = "configmaps") -> int:
    return client.get(f"/api/v1/namespaces/{namespace}/{resource}").status


def test_a_role_binding_takes_effect_in_its_namespace_on_the_next_request_and_nowhere_else(
    rbac: Rbac, kube: RawKube, other_namespace: str
) -> None:
    client = rbac.serviceaccount()
    here, there = rbac.namespace, other_namespace
    assert (_status(client, here), _status(client, there)) == (403, 403)  # both resolutions cached now
    name = rbac.grant("robot", rule("list", "core", "configmaps"), namespace=there)
    assert (_status(client, here), _status(client, there)) == (403, 200)
    assert kube.delete(f"{RBAC_V1}/namespaces/{there}/rolebindings/{name}").status == 200
    assert _status(client, there) == 403


def test_a_role_update_takes_effect_on_the_next_request(rbac: Rbac, kube: RawKube) -> None:
    client = rbac.serviceaccount()
    name = rbac.grant("robot", rule("list", "core", "configmaps"))
    assert _status(client, rbac.namespace) == 200
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/roles/{name}"
    assert kube.put(path, role(name, rule("list", "core", "secrets"))).status == 200
    assert (_status(client, rbac.namespace), _status(client, rbac.namespace, "secrets")) == (403, 200)


def test_a_cluster_role_update_takes_effect_in_every_namespace_on_the_next_request(
    rbac: Rbac, kube: RawKube, other_namespace: str
) -> None:
    client = rbac.serviceaccount()
    reader = rbac.cluster_role(rule("list", "core", "configmaps"))
    for namespace in (rbac.namespace, other_namespace):
        binding = role_binding("reader", "ClusterRole", reader, sa_subject(rbac.namespace, "robot"))
        created(kube.post(f"{RBAC_V1}/namespaces/{namespace}/rolebindings", binding))
    assert (_status(client, rbac.namespace), _status(client, other_namespace)) == (200, 200)
    updated = cluster_role(reader, rule("list", "core", "secrets"))
    assert kube.put(f"{RBAC_V1}/clusterroles/{reader}", updated).status == 200
    assert (_status(client, rbac.namespace), _status(client, other_namespace)) == (403, 403)
    assert _status(client, other_namespace, "secrets") == 200


def test_a_role_in_another_namespace_changing_keeps_this_namespace_answering_the_same(
    rbac: Rbac, kube: RawKube, other_namespace: str
) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("list", "core", "configmaps"))
    assert _status(client, rbac.namespace) == 200
    rbac.grant("robot", rule("list", "core", "secrets"), namespace=other_namespace)
    assert _status(client, rbac.namespace) == 200
    assert _status(client, rbac.namespace, "secrets") == 403
    assert _status(client, other_namespace, "secrets") == 200


def test_resolved_rules_are_reused_until_an_rbac_write_that_concerns_them() -> None:
    from toolhive.testing import _authz, _store

    store = _store.Store()
    for name in ("a", "b"):
        store.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    store.seed(cluster_role("reader", rule("list", "core", "configmaps")))
    calls: list[tuple[str, str | None]] = []
    listing = store.rbac_objects

    def counted(kind: str, namespace: str | None = None) -> Iterable[Mapping[str, Any]]:
        calls.append((kind, namespace))
        return listing(kind, namespace)

    store.rbac_objects = counted  # type: ignore[method-assign]
    authorizer = _authz.Authorizer(store)
    robot = _authz.serviceaccount_user("a", "robot")
    asks = _authz.RequestAttributes(robot, "list", "", "configmaps", namespace="a")
    assert not authorizer.authorize(asks)
    listed = len(calls)
    assert not authorizer.authorize(asks) and len(calls) == listed  # cached

    def bind(namespace: str) -> None:
        binding = role_binding("reader", "ClusterRole", "reader", sa_subject("a", "robot"))
        binding["metadata"]["namespace"] = namespace
        store.seed(binding)

    bind("b")
    assert not authorizer.authorize(asks) and len(calls) == listed  # another namespace's write
    bind("a")
    assert authorizer.authorize(asks) and len(calls) > listed


def _counting_store() -> tuple[Any, list[tuple[str, str | None]]]:
    from toolhive.testing import _store

    store = _store.Store()
    store.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    calls: list[tuple[str, str | None]] = []
    listing = store.rbac_objects

    def counted(kind: str, namespace: str | None = None) -> Iterable[Mapping[str, Any]]:
        calls.append((kind, namespace))
        return listing(kind, namespace)

    store.rbac_objects = counted  # type: ignore[method-assign]
    return store, calls


def _write(store: Any, body: dict[str, Any]) -> None:
    """Create or replace a namespaced RBAC object in namespace "a"."""
    from toolhive.testing import _resources

    body = dict(body, metadata=dict(body["metadata"], namespace="a"))
    rt = store.type_for_kind(body["apiVersion"], body["kind"])
    assert isinstance(rt, _resources.ResourceType)
    if store.lookup(rt, "a", body["metadata"]["name"]) is None:
        store.create(rt, "a", body, manager="test")
    else:
        store.update(rt, "a", body["metadata"]["name"], body, status_write=False, manager="test")


def test_bindings_and_roles_that_do_not_concern_a_user_leave_its_resolved_rules_cached() -> None:
    from toolhive.testing import _authz

    store, calls = _counting_store()
    authorizer = _authz.Authorizer(store)
    robot = _authz.serviceaccount_user("a", "robot")
    asks = _authz.RequestAttributes(robot, "list", "", "configmaps", namespace="a")
    _write(store, role("reader", rule("list", "core", "configmaps")))
    _write(store, role_binding("robot", "Role", "reader", sa_subject("a", "robot")))
    assert authorizer.authorize(asks)
    listed = len(calls)
    # Another subject's binding and a Role nobody binds the robot to: the robot's rules are unchanged.
    _write(store, role("other", rule("list", "core", "secrets")))
    _write(store, role_binding("other", "Role", "other", sa_subject("a", "someone-else")))
    assert authorizer.authorize(asks) and len(calls) == listed, "answered from the cache"
    secrets = _authz.RequestAttributes(robot, "list", "", "secrets", namespace="a")
    assert not authorizer.authorize(secrets)


def test_a_binding_or_role_that_concerns_a_user_is_seen_on_its_next_request() -> None:
    from toolhive.testing import _authz

    store, _ = _counting_store()
    authorizer = _authz.Authorizer(store)
    robot = _authz.serviceaccount_user("a", "robot")
    configmaps = _authz.RequestAttributes(robot, "list", "", "configmaps", namespace="a")
    secrets = _authz.RequestAttributes(robot, "list", "", "secrets", namespace="a")
    _write(store, role("reader", rule("list", "core", "configmaps")))
    _write(store, role("other", rule("list", "core", "secrets")))
    _write(store, role_binding("other", "Role", "other", sa_subject("a", "someone-else")))
    assert not authorizer.authorize(secrets)
    # The binding gains the robot (a ServiceAccount subject without a namespace means the binding's).
    subject = {"kind": "ServiceAccount", "name": "robot"}
    _write(store, role_binding("other", "Role", "other", sa_subject("a", "someone-else"), subject))
    assert authorizer.authorize(secrets)
    # The Role it references changes.
    _write(store, role("other", rule("list", "core", "configmaps")))
    assert (authorizer.authorize(secrets), authorizer.authorize(configmaps)) == (False, True)
    # The binding loses the robot again.
    _write(store, role_binding("other", "Role", "other", sa_subject("a", "someone-else")))
    assert not authorizer.authorize(configmaps)
    # A group the robot is in.
    group = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccounts:a"}
    _write(store, role_binding("everyone", "Role", "reader", group))
    assert authorizer.authorize(configmaps)
    store.delete(
        store.type_for_kind("rbac.authorization.k8s.io/v1", "RoleBinding"), "a", "everyone", options={}
    )
    assert not authorizer.authorize(configmaps)

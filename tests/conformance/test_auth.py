"""Authentication and authorization: bearer tokens, TokenRequest, 401/403 bodies, escalation, access reviews.

The RBAC rule engine itself is tested in test_rbac_engine.py; here the HTTP server wires it in.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube

RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture
def robot(kube: RawKube, cluster: cluster_mod.Cluster, namespace: str) -> RawKube:
    """A raw client authenticated as ServiceAccount `robot` in the test namespace (no permissions)."""
    kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
    )
    return kube.as_token(cluster.token_for_serviceaccount(namespace, "robot"))


def grant(kube: RawKube, namespace: str, rules: list[dict[str, Any]], *, name: str = "robot") -> None:
    kube.post(
        f"{RBAC}/namespaces/{namespace}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name},
            "rules": rules,
        },
    )
    kube.post(
        f"{RBAC}/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}],
        },
    )


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no token", "unknown token"])
def test_requests_without_a_valid_token_are_401(kube: RawKube, token: str | None) -> None:
    response = kube.as_token(token).get("/api/v1/namespaces")
    assert response.status == 401
    assert response.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_a_token_request_returns_a_token_that_authenticates_as_the_serviceaccount(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    review = robot.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review.status == 201
    info = review.body["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:robot"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"} <= set(
        info["groups"]
    )


def test_a_token_request_for_a_missing_serviceaccount_is_404(kube: RawKube, namespace: str) -> None:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    response = kube.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/ghost/token", body)
    assert response.status == 404 and response.message == 'serviceaccounts "ghost" not found'


def test_a_token_request_shorter_than_ten_minutes_is_422(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 60},
    }
    response = kube.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/robot/token", body)
    assert response.status == 422 and "may not specify a duration less than 10 minutes" in response.message


def test_an_unbound_serviceaccount_is_forbidden_with_the_real_message(robot: RawKube, namespace: str) -> None:
    response = robot.get(f"/api/v1/namespaces/{namespace}/pods")
    assert response.status == 403 and response.reason == "Forbidden"
    assert response.message == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:robot" cannot list resource "pods" '
        f'in API group "" in the namespace "{namespace}"'
    )
    assert response.body["details"] == {"kind": "pods"}


def test_a_role_binding_grants_access_at_once(kube: RawKube, robot: RawKube, namespace: str) -> None:
    grant(kube, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    assert robot.get(f"/api/v1/namespaces/{namespace}/configmaps").status == 200
    assert robot.get("/api/v1/namespaces/default/configmaps").status == 403, "only in the bound namespace"
    assert robot.get(f"/api/v1/namespaces/{namespace}/secrets").status == 403


def test_discovery_is_open_to_every_authenticated_user(robot: RawKube) -> None:
    assert robot.get("/apis").status == 200 and robot.get("/version").status == 200


def test_deleting_the_serviceaccount_revokes_its_tokens(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    kube.delete(f"/api/v1/namespaces/{namespace}/serviceaccounts/robot")
    cluster_mod.poll(lambda: robot.get("/version").status == 401)


def test_creating_a_role_with_permissions_one_lacks_is_forbidden(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    grant(
        kube,
        namespace,
        [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        ],
    )

    def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name},
            "rules": rules,
        }

    allowed = robot.post(
        f"{RBAC}/namespaces/{namespace}/roles",
        role("subset", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
    )
    assert allowed.status == 201, allowed.body
    denied = robot.post(
        f"{RBAC}/namespaces/{namespace}/roles",
        role("more", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
    )
    assert denied.status == 403 and denied.reason == "Forbidden"
    assert "attempting to grant RBAC permissions not currently held" in denied.message


def test_binding_a_role_one_does_not_hold_needs_bind(kube: RawKube, robot: RawKube, namespace: str) -> None:
    grant(
        kube,
        namespace,
        [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}],
    )
    for role, resource in (("secret-reader", "secrets"), ("other", "pods")):
        kube.post(
            f"{RBAC}/namespaces/{namespace}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}],
            },
        )

    def binding(role: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"to-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}],
        }

    denied = robot.post(f"{RBAC}/namespaces/{namespace}/rolebindings", binding("secret-reader"))
    assert denied.status == 403, denied.body
    grant(
        kube,
        namespace,
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles"],
                "verbs": ["bind"],
                "resourceNames": ["secret-reader"],
            }
        ],
        name="binder",
    )
    assert robot.post(f"{RBAC}/namespaces/{namespace}/rolebindings", binding("secret-reader")).status == 201
    assert robot.post(f"{RBAC}/namespaces/{namespace}/rolebindings", binding("other")).status == 403


def test_self_subject_access_review_answers_for_the_caller(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    grant(kube, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])

    def review(client: RawKube, verb: str, resource: str) -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}},
        }
        response = client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
        assert response.status == 201, response.body
        return bool(response.body["status"]["allowed"])

    assert review(robot, "get", "configmaps") is True
    assert review(robot, "delete", "configmaps") is False
    assert review(kube, "delete", "configmaps") is True


def test_an_access_review_without_attributes_is_422(robot: RawKube) -> None:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}
    assert robot.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body).status == 422


def test_self_subject_rules_review_lists_the_callers_rules(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    grant(kube, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    response = robot.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body)
    assert response.status == 201
    rules = response.body["status"]["resourceRules"]
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]} in rules


def test_reviews_only_accept_create(kube: RawKube) -> None:
    assert kube.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").status == 405


def test_an_apply_that_creates_needs_create_as_well_as_patch(
    kube: RawKube, robot: RawKube, namespace: str
) -> None:
    grant(kube, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}])
    path = f"/api/v1/namespaces/{namespace}/configmaps/applied"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    denied = robot.patch(path, config, "application/apply-patch+yaml", query={"fieldManager": "robot"})
    assert denied.status == 403
    assert 'cannot create resource "configmaps"' in denied.message
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "applied"}})
    allowed = robot.patch(path, config, "application/apply-patch+yaml", query={"fieldManager": "robot"})
    assert allowed.status == 200, "patch alone suffices once the object exists"

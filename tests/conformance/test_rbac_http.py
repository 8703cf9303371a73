"""Authentication and RBAC through the real HTTP server: 401/403 bodies, access reviews, escalation and bind.

Written from the Kubernetes "Using RBAC Authorization" and "Authenticating" pages; every expectation is what
kube-apiserver answers, so these run unchanged against a real cluster (TOOLHIVE_TEST_KUBECONFIG), except the
ones marked loopback_only. Subjects are ServiceAccounts whose tokens come from the TokenRequest API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube, Response

RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"/apis/{RBAC}/v1"
Obj = dict[str, Any]


def rule(verbs: str, group: str, resources: str, names: str = "") -> Obj:
    """A PolicyRule from space-separated lists; `group` "core" is the "" group."""
    out: Obj = {
        "apiGroups": ["" if group == "core" else group],
        "resources": resources.split(),
        "verbs": verbs.split(),
    }
    if names:
        out["resourceNames"] = names.split()
    return out


def role(name: str, *rules: Obj) -> Obj:
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name}, "rules": list(rules)}


def cluster_role(name: str, *rules: Obj) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def sa_subject(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def role_binding(name: str, ref_kind: str, ref_name: str, *subjects: Obj) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref_name},
        "subjects": list(subjects),
    }


def cluster_role_binding(name: str, ref_name: str, *subjects: Obj) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ref_name},
        "subjects": list(subjects),
    }


def sa_groups(namespace: str) -> str:
    """How an escalation message prints a ServiceAccount's groups (Go %q of a []string)."""
    return f'["system:serviceaccounts" "system:serviceaccounts:{namespace}" "system:authenticated"]'


def created(response: Response) -> Obj:
    assert response.status == 201, (response.status, response.body)
    body: Obj = response.body
    return body


class Rbac:
    """Admin-side helpers for one test: ServiceAccounts with tokens, grants, cleanup of cluster objects."""

    def __init__(self, kube: RawKube, cluster: cluster_mod.Cluster, namespace: str) -> None:
        self.kube = kube
        self.cluster = cluster
        self.namespace = namespace
        self.cleanup: list[str] = []

    def serviceaccount(self, name: str = "robot", namespace: str | None = None) -> RawKube:
        """Create ServiceAccount `name` and return a client authenticating with a fresh token for it."""
        ns = namespace or self.namespace
        created(
            self.kube.post(
                f"/api/v1/namespaces/{ns}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            )
        )
        return self.kube.as_token(self.cluster.token_for_serviceaccount(ns, name))

    def grant(self, sa: str, *rules: Obj, namespace: str | None = None) -> str:
        """A Role with `rules` bound to ServiceAccount `sa` (of the test namespace) in `namespace`."""
        ns = namespace or self.namespace
        name = cluster_mod.unique_name("grant")
        created(self.kube.post(f"{RBAC_V1}/namespaces/{ns}/roles", role(name, *rules)))
        binding = role_binding(name, "Role", name, sa_subject(self.namespace, sa))
        created(self.kube.post(f"{RBAC_V1}/namespaces/{ns}/rolebindings", binding))
        return name

    def cluster_role(self, *rules: Obj) -> str:
        name = cluster_mod.unique_name("rbac-test")
        created(self.kube.post(f"{RBAC_V1}/clusterroles", cluster_role(name, *rules)))
        self.cleanup.append(f"{RBAC_V1}/clusterroles/{name}")
        return name

    def cluster_grant(self, sa: str, *rules: Obj) -> str:
        """A ClusterRole with `rules` bound cluster-wide to ServiceAccount `sa` of the test namespace."""
        name = self.cluster_role(*rules)
        created(
            self.kube.post(
                f"{RBAC_V1}/clusterrolebindings",
                cluster_role_binding(name, name, sa_subject(self.namespace, sa)),
            )
        )
        self.cleanup.append(f"{RBAC_V1}/clusterrolebindings/{name}")
        return name

    def can(self, client: RawKube, **attributes: str) -> bool:
        """SelfSubjectAccessReview as `client` for resourceAttributes (namespace defaults to the test's)."""
        attributes.setdefault("namespace", self.namespace)
        review = client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        return bool(created(review)["status"]["allowed"])

    def eventually_can(self, client: RawKube, **attributes: str) -> None:
        """Wait until a grant is in effect (immediate on the loopback API, informer-delayed on a real one)."""
        cluster_mod.poll(lambda: self.can(client, **attributes), timeout=10, message=f"grant {attributes}")


@pytest.fixture
def rbac(kube: RawKube, cluster: cluster_mod.Cluster, namespace: str) -> Iterator[Rbac]:
    helper = Rbac(kube, cluster, namespace)
    yield helper
    for path in reversed(helper.cleanup):
        kube.delete(path)


# --- authentication ------------------------------------------------------------------------------------

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


@pytest.mark.loopback_only("real clusters usually enable anonymous authentication (403, not 401)")
def test_request_without_a_token_is_401_unauthorized(kube: RawKube) -> None:
    response = kube.as_token(None).get("/api/v1/namespaces")
    assert (response.status, response.body) == (401, UNAUTHORIZED)


def test_request_with_an_unknown_token_is_401_unauthorized(kube: RawKube) -> None:
    response = kube.as_token("not-a-real-token").get("/api/v1/namespaces")
    assert (response.status, response.body) == (401, UNAUTHORIZED)


def test_admin_token_is_allowed_everything(kube: RawKube) -> None:
    assert kube.get("/api/v1/namespaces").status == 200
    assert kube.get(f"{RBAC_V1}/clusterroles/cluster-admin").status == 200


def test_serviceaccount_token_authenticates_as_the_serviceaccount(rbac: Rbac) -> None:
    client = rbac.serviceaccount("whoami")
    review = client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    user = created(review)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{rbac.namespace}:whoami"
    assert {
        "system:serviceaccounts",
        f"system:serviceaccounts:{rbac.namespace}",
        "system:authenticated",
    } <= set(user["groups"])


def test_deleting_a_serviceaccount_invalidates_its_tokens(rbac: Rbac, kube: RawKube) -> None:
    client = rbac.serviceaccount("short-lived")
    assert client.get("/version").status == 200
    assert kube.delete(f"/api/v1/namespaces/{rbac.namespace}/serviceaccounts/short-lived").status == 200
    cluster_mod.poll(lambda: client.get("/version").status == 401, timeout=10, message="token revoked")


# --- default policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis", f"/apis/{RBAC}/v1", "/healthz"])
def test_every_authenticated_user_reads_discovery(rbac: Rbac, path: str) -> None:
    assert rbac.serviceaccount().get(path).status == 200


def test_serviceaccount_without_grants_cannot_list_pods_403_body(rbac: Rbac) -> None:
    response = rbac.serviceaccount().get(f"/api/v1/namespaces/{rbac.namespace}/pods")
    assert response.status == 403
    assert response.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'pods is forbidden: User "system:serviceaccount:{rbac.namespace}:robot" cannot list '
        f'resource "pods" in API group "" in the namespace "{rbac.namespace}"',
        "reason": "Forbidden",
        "details": {"kind": "pods"},
        "code": 403,
    }


def test_forbidden_get_of_a_named_grouped_resource_names_it(rbac: Rbac) -> None:
    response = rbac.serviceaccount().get(f"/apis/apps/v1/namespaces/{rbac.namespace}/deployments/web")
    assert response.status == 403
    assert response.message == (
        f'deployments.apps "web" is forbidden: User "system:serviceaccount:{rbac.namespace}:robot" '
        f'cannot get resource "deployments" in API group "apps" in the namespace "{rbac.namespace}"'
    )
    assert response.body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


def test_forbidden_cluster_scoped_list_says_cluster_scope(rbac: Rbac) -> None:
    response = rbac.serviceaccount().get("/api/v1/namespaces")
    assert response.status == 403
    assert response.message == (
        f'namespaces is forbidden: User "system:serviceaccount:{rbac.namespace}:robot" cannot list resource '
        '"namespaces" in API group "" at the cluster scope'
    )


def test_forbidden_non_resource_url_body(rbac: Rbac) -> None:
    response = rbac.serviceaccount().get("/metrics")
    assert response.status == 403
    assert response.body["message"] == (
        f'forbidden: User "system:serviceaccount:{rbac.namespace}:robot" cannot get path "/metrics"'
    )
    assert response.body["details"] == {}
    assert response.reason == "Forbidden"


# --- grants through bindings ---------------------------------------------------------------------------


def test_role_binding_grants_in_its_namespace_only(rbac: Rbac, cluster: cluster_mod.Cluster) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("list", "core", "configmaps"))
    rbac.eventually_can(client, verb="list", resource="configmaps")
    assert client.get(f"/api/v1/namespaces/{rbac.namespace}/configmaps").status == 200
    other = cluster.create_namespace("t")
    try:
        assert client.get(f"/api/v1/namespaces/{other}/configmaps").status == 403
    finally:
        cluster.delete_namespace(other)
    assert client.get("/api/v1/configmaps").status == 403, "all-namespaces list is cluster scope"


def test_role_binding_to_a_cluster_role_is_scoped_to_the_binding_namespace(rbac: Rbac, kube: RawKube) -> None:
    client = rbac.serviceaccount()
    reader = rbac.cluster_role(rule("get list", "core", "configmaps namespaces"))
    binding = role_binding("reader", "ClusterRole", reader, sa_subject(rbac.namespace, "robot"))
    created(kube.post(f"{RBAC_V1}/namespaces/{rbac.namespace}/rolebindings", binding))
    rbac.eventually_can(client, verb="list", resource="configmaps")
    assert client.get(f"/api/v1/namespaces/{rbac.namespace}/configmaps").status == 200
    assert client.get("/api/v1/namespaces").status == 403, (
        "cluster-scoped resources need a ClusterRoleBinding"
    )


def test_resource_names_restrict_get_and_never_grant_list(rbac: Rbac, kube: RawKube) -> None:
    ns = rbac.namespace
    for name in ("allowed", "other"):
        created(
            kube.post(
                f"/api/v1/namespaces/{ns}/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}},
            )
        )
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("get list", "core", "configmaps", "allowed"))
    rbac.eventually_can(client, verb="get", resource="configmaps", name="allowed")
    assert client.get(f"/api/v1/namespaces/{ns}/configmaps/allowed").status == 200
    assert client.get(f"/api/v1/namespaces/{ns}/configmaps/other").status == 403
    assert client.get(f"/api/v1/namespaces/{ns}/configmaps").status == 403


def test_subresource_rules_are_separate_from_the_resource(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("get", "core", "serviceaccounts/token"), rule("get", "core", "serviceaccounts"))
    rbac.eventually_can(client, verb="get", resource="serviceaccounts")
    assert rbac.can(client, verb="get", resource="serviceaccounts", subresource="token")
    assert not rbac.can(client, verb="create", resource="serviceaccounts", subresource="token")
    assert not rbac.can(client, verb="get", resource="pods", subresource="log")


def test_deleting_the_binding_revokes_access(rbac: Rbac, kube: RawKube) -> None:
    client = rbac.serviceaccount()
    name = rbac.grant("robot", rule("list", "core", "configmaps"))
    rbac.eventually_can(client, verb="list", resource="configmaps")
    assert kube.delete(f"{RBAC_V1}/namespaces/{rbac.namespace}/rolebindings/{name}").status == 200
    cluster_mod.poll(
        lambda: client.get(f"/api/v1/namespaces/{rbac.namespace}/configmaps").status == 403,
        timeout=10,
        message="binding deletion revokes",
    )


# --- access reviews ---------------------------------------------------------------------------------------


def test_self_subject_access_review_allowed_names_the_binding(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    name = rbac.grant("robot", rule("get", "core", "pods"))
    rbac.eventually_can(client, verb="get", resource="pods")
    review = client.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": rbac.namespace, "verb": "get", "resource": "pods"}},
        },
    )
    assert created(review)["status"] == {
        "allowed": True,
        "reason": f'RBAC: allowed by RoleBinding "{name}/{rbac.namespace}" of Role "{name}" '
        f'to ServiceAccount "robot/{rbac.namespace}"',
    }


def test_self_subject_access_review_denied(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    assert not rbac.can(client, verb="delete", resource="secrets")
    assert not rbac.can(client, verb="list", resource="namespaces", namespace="")


def test_self_subject_access_review_for_a_non_resource_url(rbac: Rbac) -> None:
    client = rbac.serviceaccount()

    def review(path: str) -> Any:
        return created(
            client.post(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"nonResourceAttributes": {"path": path, "verb": "get"}},
                },
            )
        )["status"]

    assert review("/apis")["allowed"] is True
    assert review("/metrics")["allowed"] is False


def test_self_subject_rules_review_lists_namespace_and_cluster_rules(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("get list", "core", "configmaps", "a b"))
    rbac.eventually_can(client, verb="get", resource="configmaps", name="a")
    review = client.post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": rbac.namespace},
        },
    )
    status = created(review)["status"]
    assert status["incomplete"] is False
    assert {
        "verbs": ["get", "list"],
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["a", "b"],
    } in status["resourceRules"]
    assert {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    } in status["resourceRules"]
    urls = {url for r in status["nonResourceRules"] for url in r["nonResourceURLs"]}
    assert {"/api", "/api/*", "/apis", "/apis/*", "/version"} <= urls


def test_self_subject_rules_review_excludes_other_namespaces(
    rbac: Rbac, cluster: cluster_mod.Cluster
) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("delete", "core", "secrets"))
    other = cluster.create_namespace("t")
    try:
        review = client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": other},
            },
        )
        rules = created(review)["status"]["resourceRules"]
        assert all("secrets" not in r.get("resources", []) for r in rules)
    finally:
        cluster.delete_namespace(other)


# --- escalation prevention: roles ---------------------------------------------------------------------


@pytest.fixture
def role_writer(rbac: Rbac) -> RawKube:
    """`robot` may create/update Roles and holds only get/list on configmaps in the test namespace."""
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("create update get", RBAC, "roles"), rule("get list", "core", "configmaps"))
    rbac.eventually_can(client, verb="create", resource="roles", group=RBAC)
    return client


def test_creating_a_role_within_held_permissions_is_allowed(role_writer: RawKube, rbac: Rbac) -> None:
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/roles"
    created(role_writer.post(path, role("subset", rule("get", "core", "configmaps"))))


def test_creating_a_role_beyond_held_permissions_is_forbidden(role_writer: RawKube, rbac: Rbac) -> None:
    ns = rbac.namespace
    response = role_writer.post(
        f"{RBAC_V1}/namespaces/{ns}/roles",
        role("wider", rule("get list watch", "core", "configmaps secrets")),
    )
    assert response.status == 403
    assert response.reason == "Forbidden"
    assert response.message == (
        f'roles.rbac.authorization.k8s.io "wider" is forbidden: user "system:serviceaccount:{ns}:robot" '
        f"(groups={sa_groups(ns)}) is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["configmaps"], Verbs:["watch"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"]}'
    )
    assert response.body["details"] == {"name": "wider", "group": RBAC, "kind": "roles"}


def test_updating_a_role_beyond_held_permissions_is_forbidden(role_writer: RawKube, rbac: Rbac) -> None:
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/roles"
    current = created(role_writer.post(path, role("grows", rule("get", "core", "configmaps"))))
    current["rules"].append(rule("delete", "core", "configmaps"))
    response = role_writer.put(f"{path}/grows", current)
    assert response.status == 403
    assert "is attempting to grant RBAC permissions not currently held" in response.message


def test_escalate_verb_allows_granting_permissions_not_held(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("create escalate", RBAC, "roles"))
    rbac.eventually_can(client, verb="escalate", resource="roles", group=RBAC)
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/roles"
    created(client.post(path, role("anything", rule("*", "*", "*"))))


def test_creating_a_cluster_role_needs_the_permissions_cluster_wide(rbac: Rbac) -> None:
    client = rbac.serviceaccount()
    rbac.cluster_grant("robot", rule("create", RBAC, "clusterroles"))
    rbac.grant("robot", rule("get", "core", "configmaps"))  # held only in one namespace
    rbac.eventually_can(client, verb="create", resource="clusterroles", group=RBAC, namespace="")
    name = cluster_mod.unique_name("rbac-test")
    rbac.cleanup.append(f"{RBAC_V1}/clusterroles/{name}")
    response = client.post(f"{RBAC_V1}/clusterroles", cluster_role(name, rule("get", "core", "configmaps")))
    assert response.status == 403
    assert response.message.endswith(
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["configmaps"], Verbs:["get"]}'
    )


# --- escalation prevention: bindings -------------------------------------------------------------------


@pytest.fixture
def binder(rbac: Rbac) -> Callable[..., RawKube]:
    """`robot` may manage RoleBindings and holds the extra `rules` cluster-wide (e.g. bind)."""

    def make(*rules: Obj) -> RawKube:
        client = rbac.serviceaccount()
        rbac.cluster_grant("robot", rule("get list create update delete", RBAC, "rolebindings"), *rules)
        rbac.eventually_can(client, verb="create", resource="rolebindings", group=RBAC)
        return client

    return make


def test_bind_with_resource_names_allows_binding_only_that_cluster_role(
    rbac: Rbac, binder: Callable[..., RawKube]
) -> None:
    ns = rbac.namespace
    operator = rbac.cluster_role(rule("get list watch", "core", "secrets"))
    other = rbac.cluster_role(rule("get list watch", "core", "secrets"))
    client = binder(rule("bind", RBAC, "clusterroles", operator))
    path = f"{RBAC_V1}/namespaces/{ns}/rolebindings"
    created(client.post(path, role_binding("grant", "ClusterRole", operator, sa_subject(ns, "operator"))))
    response = client.post(path, role_binding("sneaky", "ClusterRole", other, sa_subject(ns, "operator")))
    assert response.status == 403
    assert response.message == (
        f'rolebindings.rbac.authorization.k8s.io "sneaky" is forbidden: '
        f'user "system:serviceaccount:{ns}:robot" (groups={sa_groups(ns)}) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"]}'
    )
    cluster_admin = client.post(
        path, role_binding("admin", "ClusterRole", "cluster-admin", sa_subject(ns, "x"))
    )
    assert cluster_admin.status == 403


def test_binding_a_role_whose_permissions_are_held_needs_no_bind(
    rbac: Rbac, binder: Callable[..., RawKube]
) -> None:
    ns = rbac.namespace
    client = binder(rule("get", "core", "configmaps"))
    reader = rbac.cluster_role(rule("get", "core", "configmaps"))
    path = f"{RBAC_V1}/namespaces/{ns}/rolebindings"
    created(client.post(path, role_binding("reader", "ClusterRole", reader, sa_subject(ns, "someone"))))


def test_binding_a_missing_role_without_bind_is_404(rbac: Rbac, binder: Callable[..., RawKube]) -> None:
    client = binder()
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/rolebindings"
    response = client.post(path, role_binding("ghost", "ClusterRole", "no-such-role", sa_subject("a", "b")))
    assert response.status == 404
    assert response.message == 'clusterroles.rbac.authorization.k8s.io "no-such-role" not found'


def test_binding_a_missing_role_with_bind_on_it_is_allowed(
    rbac: Rbac, binder: Callable[..., RawKube]
) -> None:
    ghost = cluster_mod.unique_name("no-such-role")
    client = binder(rule("bind", RBAC, "clusterroles", ghost))
    path = f"{RBAC_V1}/namespaces/{rbac.namespace}/rolebindings"
    created(client.post(path, role_binding("ghost", "ClusterRole", ghost, sa_subject("a", "b"))))


def test_bind_held_in_one_namespace_does_not_allow_binding_in_another(
    rbac: Rbac, cluster: cluster_mod.Cluster
) -> None:
    ns = rbac.namespace
    target = rbac.cluster_role(rule("get", "core", "secrets"))
    client = rbac.serviceaccount()
    other = cluster.create_namespace("t")
    try:
        for where in (ns, other):
            rbac.grant("robot", rule("create", RBAC, "rolebindings"), namespace=where)
        rbac.grant("robot", rule("bind", RBAC, "clusterroles", target))  # only in ns
        rbac.eventually_can(client, verb="create", resource="rolebindings", group=RBAC, namespace=other)
        rbac.eventually_can(client, verb="bind", resource="clusterroles", group=RBAC, name=target)
        grant = role_binding("g", "ClusterRole", target, sa_subject(ns, "x"))
        created(client.post(f"{RBAC_V1}/namespaces/{ns}/rolebindings", grant))
        assert client.post(f"{RBAC_V1}/namespaces/{other}/rolebindings", grant).status == 403
    finally:
        cluster.delete_namespace(other)


def test_admin_may_bind_anything_even_a_missing_role(kube: RawKube, namespace: str) -> None:
    path = f"{RBAC_V1}/namespaces/{namespace}/rolebindings"
    created(kube.post(path, role_binding("admin-made", "ClusterRole", "no-such-role", sa_subject("a", "b"))))


def test_role_ref_is_immutable(kube: RawKube, namespace: str) -> None:
    path = f"{RBAC_V1}/namespaces/{namespace}/rolebindings"
    current = created(
        kube.post(path, role_binding("fixed", "ClusterRole", "cluster-admin", sa_subject("a", "b")))
    )
    current["roleRef"]["name"] = "system:discovery"
    response = kube.put(f"{path}/fixed", current)
    assert response.status == 422
    assert response.reason == "Invalid"
    assert "cannot change roleRef" in response.message


def test_escalate_limited_by_resource_names_allows_updating_only_that_role(rbac: Rbac, kube: RawKube) -> None:
    ns = rbac.namespace
    path = f"{RBAC_V1}/namespaces/{ns}/roles"
    for name in ("tunable", "fixed"):
        created(kube.post(path, role(name, rule("get", "core", "configmaps"))))
    client = rbac.serviceaccount()
    rbac.grant("robot", rule("get update", RBAC, "roles"), rule("escalate", RBAC, "roles", "tunable"))
    rbac.eventually_can(client, verb="escalate", resource="roles", group=RBAC, name="tunable")
    for name, status in (("tunable", 200), ("fixed", 403)):
        current = client.get(f"{path}/{name}").body
        current["rules"].append(rule("delete", "core", "secrets"))
        assert client.put(f"{path}/{name}", current).status == status, name


def test_cluster_role_binding_needs_bind_at_cluster_scope(rbac: Rbac, kube: RawKube) -> None:
    ns = rbac.namespace
    target = rbac.cluster_role(rule("get", "core", "secrets"))
    client = rbac.serviceaccount()
    rbac.cluster_grant("robot", rule("create", RBAC, "clusterrolebindings"))
    rbac.grant("robot", rule("bind", RBAC, "clusterroles", target))  # bind only inside the test namespace
    rbac.eventually_can(client, verb="create", resource="clusterrolebindings", group=RBAC, namespace="")
    rbac.eventually_can(client, verb="bind", resource="clusterroles", group=RBAC, name=target)
    name = cluster_mod.unique_name("rbac-test")
    rbac.cleanup.append(f"{RBAC_V1}/clusterrolebindings/{name}")
    crb = cluster_role_binding(name, target, sa_subject(ns, "x"))
    denied = client.post(f"{RBAC_V1}/clusterrolebindings", crb)
    assert denied.status == 403
    assert denied.message.startswith(
        f'clusterrolebindings.rbac.authorization.k8s.io "{name}" is forbidden: user '
    )
    rbac.cluster_grant("robot", rule("bind", RBAC, "clusterroles", target))
    rbac.eventually_can(client, verb="bind", resource="clusterroles", group=RBAC, name=target, namespace="")
    created(client.post(f"{RBAC_V1}/clusterrolebindings", crb))

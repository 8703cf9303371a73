"""Unit conformance of the loopback API's authentication and RBAC engine (toolhive.testing._authz).

Each case is written from the Kubernetes RBAC documentation and kube-apiserver's RBAC code: rule matching,
binding scope, subjects, escalation prevention and the exact texts of 403 messages. Pure: no server here;
HTTP-level behaviour lives in test_rbac_http.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from toolhive.testing import _authz

RBAC = "rbac.authorization.k8s.io"
Obj = dict[str, Any]

# --- fixture factories ---------------------------------------------------------------------------------


def rule(verbs: str, groups: str, resources: str, names: str = "") -> Obj:
    """A resource rule from space-separated lists ("" alone is the core group: pass "core")."""
    out: Obj = {
        "verbs": verbs.split(),
        "apiGroups": ["" if g == "core" else g for g in groups.split()],
        "resources": resources.split(),
    }
    if names:
        out["resourceNames"] = names.split()
    return out


def url_rule(verbs: str, urls: str) -> Obj:
    return {"verbs": verbs.split(), "nonResourceURLs": urls.split()}


def role(name: str, namespace: str, *rules: Obj) -> Obj:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def cluster_role(name: str, *rules: Obj, aggregation: bool = False) -> Obj:
    obj: Obj = {"kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}
    if aggregation:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-x": "true"}}]}
    return obj


def user(name: str) -> Obj:
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def sa(namespace: str | None, name: str) -> Obj:
    out: Obj = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def binding(name: str, namespace: str, ref_kind: str, ref_name: str, *subjects: Obj) -> Obj:
    return {
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref_name},
        "subjects": list(subjects),
    }


def cluster_binding(name: str, ref_name: str, *subjects: Obj) -> Obj:
    return {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ref_name},
        "subjects": list(subjects),
    }


class Store:
    """A fake RbacObjects over a list, recording each query."""

    def __init__(self, *objs: Obj) -> None:
        self.objs = list(objs)
        self.calls: list[tuple[str, str | None]] = []

    def rbac_objects(
        self, kind: _authz.RbacKind, namespace: str | None = None
    ) -> Iterable[Mapping[str, Any]]:
        self.calls.append((kind, namespace))
        return [
            o
            for o in self.objs
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]


class VersionedStore(Store):
    def __init__(self, *objs: Obj) -> None:
        super().__init__(*objs)
        self.version = 1

    def rbac_version(self) -> int:
        return self.version


ALICE = _authz.UserInfo("alice", ("system:authenticated",))
BOB = _authz.UserInfo("bob", ("devs", "system:authenticated"))
ROBOT = _authz.serviceaccount_user("ops", "robot")
ADMIN = _authz.UserInfo("admin", ("system:masters", "system:authenticated"))


def attrs(
    who: _authz.UserInfo,
    verb: str,
    resource: str,
    *,
    group: str = "",
    sub: str = "",
    ns: str = "",
    name: str = "",
) -> _authz.RequestAttributes:
    return _authz.RequestAttributes(who, verb, group, resource, subresource=sub, namespace=ns, name=name)


def url(who: _authz.UserInfo, verb: str, path: str) -> _authz.RequestAttributes:
    return _authz.RequestAttributes(who, verb, "", "", path=path)


def authorizer(*objs: Obj) -> _authz.Authorizer:
    return _authz.Authorizer(Store(*objs))


def granting(*rules: Obj) -> _authz.Authorizer:
    """Alice holds `rules` cluster-wide."""
    return authorizer(cluster_role("r", *rules), cluster_binding("b", "r", user("alice")))


# --- authentication ----------------------------------------------------------------------------------


def test_serviceaccount_token_authenticates_as_the_serviceaccount_with_its_groups() -> None:
    authn = _authz.Authenticator()
    token = authn.issue_serviceaccount_token("team-a", "builder")
    assert authn.authenticate(f"Bearer {token}") == _authz.UserInfo(
        "system:serviceaccount:team-a:builder",
        ("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"),
    )


def test_static_token_user_also_gets_system_authenticated_once() -> None:
    authn = _authz.Authenticator()
    authn.add_token("t1", _authz.UserInfo("admin", ("system:masters",)))
    authn.add_token("t2", _authz.UserInfo("carol", ("system:authenticated", "x")))
    assert authn.authenticate("Bearer t1") == _authz.UserInfo(
        "admin", ("system:masters", "system:authenticated")
    )
    assert authn.authenticate("Bearer t2") == _authz.UserInfo("carol", ("system:authenticated", "x"))


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        pytest.param("Bearer good", True, id="bearer scheme with the token is accepted"),
        pytest.param("bearer good", True, id="the scheme is case-insensitive"),
        pytest.param("  Bearer good  ", True, id="surrounding whitespace is trimmed"),
        pytest.param("Bearer good trailing", True, id="a third field is ignored as kube-apiserver does"),
        pytest.param(None, False, id="no header is unauthorized without anonymous auth"),
        pytest.param("", False, id="an empty header is unauthorized"),
        pytest.param("Bearer", False, id="a scheme without a token is unauthorized"),
        pytest.param("Bearer  good", False, id="an empty token between two spaces is unauthorized"),
        pytest.param("Basic good", False, id="another scheme is unauthorized"),
        pytest.param("Bearer bad", False, id="an unknown token is unauthorized"),
        pytest.param("good", False, id="a bare token without scheme is unauthorized"),
    ],
)
def test_bearer_header_parsing(header: str | None, accepted: bool) -> None:
    authn = _authz.Authenticator()
    authn.add_token("good", _authz.UserInfo("alice"))
    assert (authn.authenticate(header) is not None) is accepted


def test_anonymous_mode_maps_a_missing_header_to_system_anonymous_but_still_rejects_bad_tokens() -> None:
    authn = _authz.Authenticator(anonymous=True)
    assert authn.authenticate(None) == _authz.UserInfo("system:anonymous", ("system:unauthenticated",))
    assert authn.authenticate("Bearer nope") is None


def test_each_token_request_issues_a_new_working_token() -> None:
    authn = _authz.Authenticator()
    first = authn.issue_serviceaccount_token("ops", "robot")
    second = authn.issue_serviceaccount_token("ops", "robot")
    assert first != second
    assert authn.authenticate(f"Bearer {first}") == authn.authenticate(f"Bearer {second}") == ROBOT


def test_forgetting_a_serviceaccount_invalidates_only_its_tokens() -> None:
    authn = _authz.Authenticator()
    gone = authn.issue_serviceaccount_token("ops", "robot")
    other_ns = authn.issue_serviceaccount_token("dev", "robot")
    authn.forget_serviceaccount("ops", "robot")
    authn.forget_serviceaccount("ops", "never-existed")
    assert authn.authenticate(f"Bearer {gone}") is None
    assert authn.authenticate(f"Bearer {other_ns}") == _authz.serviceaccount_user("dev", "robot")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param(lambda a: a.add_token("", _authz.UserInfo("x")), "token", id="empty static token"),
        pytest.param(lambda a: a.add_token("a b", _authz.UserInfo("x")), "token", id="token with a space"),
        pytest.param(lambda a: a.add_token("t", _authz.UserInfo("")), "user.name", id="empty user name"),
        pytest.param(lambda a: a.issue_serviceaccount_token("", "x"), "namespace", id="sa without namespace"),
        pytest.param(lambda a: a.issue_serviceaccount_token("ns", ""), "name", id="sa without name"),
    ],
)
def test_bad_authenticator_input_is_rejected_naming_the_field(call: Any, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        call(_authz.Authenticator())


# --- rule matching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "request_", "allowed"),
    [
        pytest.param(rule("get", "core", "pods"), attrs(ALICE, "get", "pods", ns="a"), True, id="exact verb"),
        pytest.param(
            rule("get", "core", "pods"), attrs(ALICE, "list", "pods", ns="a"), False, id="other verb"
        ),
        pytest.param(rule("*", "core", "pods"), attrs(ALICE, "delete", "pods", ns="a"), True, id="verb star"),
        pytest.param(
            rule("get", "core", "deployments"),
            attrs(ALICE, "get", "deployments", group="apps", ns="a"),
            False,
            id="core group does not match apps",
        ),
        pytest.param(
            rule("get", "*", "deployments"),
            attrs(ALICE, "get", "deployments", group="apps", ns="a"),
            True,
            id="group star matches any group",
        ),
        pytest.param(
            rule("get", "core", "*"), attrs(ALICE, "get", "secrets", ns="a"), True, id="resource star"
        ),
        pytest.param(
            rule("get", "core", "*"),
            attrs(ALICE, "get", "pods", sub="log", ns="a"),
            True,
            id="resource star includes subresources",
        ),
        pytest.param(
            rule("get", "core", "pods"),
            attrs(ALICE, "get", "pods", sub="log", ns="a"),
            False,
            id="a resource does not grant its subresources",
        ),
        pytest.param(
            rule("get", "core", "pods/log"),
            attrs(ALICE, "get", "pods", sub="log", ns="a"),
            True,
            id="resource/subresource grants that subresource",
        ),
        pytest.param(
            rule("get", "core", "pods/log"),
            attrs(ALICE, "get", "pods", ns="a"),
            False,
            id="a subresource does not grant its parent",
        ),
        pytest.param(
            rule("update", "apps", "*/scale"),
            attrs(ALICE, "update", "deployments", group="apps", sub="scale", ns="a"),
            True,
            id="star slash subresource grants that subresource of every resource",
        ),
        pytest.param(
            rule("update", "apps", "*/scale"),
            attrs(ALICE, "update", "deployments", group="apps", ns="a"),
            False,
            id="star slash subresource grants no main resource",
        ),
        pytest.param(
            rule("get", "core", "*/status"),
            attrs(ALICE, "get", "pods", sub="log", ns="a"),
            False,
            id="star slash subresource grants no other subresource",
        ),
        pytest.param(
            rule("get", "core", "configmaps", "cfg"),
            attrs(ALICE, "get", "configmaps", ns="a", name="cfg"),
            True,
            id="resourceNames grant the named object",
        ),
        pytest.param(
            rule("get", "core", "configmaps", "cfg"),
            attrs(ALICE, "get", "configmaps", ns="a", name="other"),
            False,
            id="resourceNames deny other names",
        ),
        pytest.param(
            rule("list", "core", "configmaps", "cfg"),
            attrs(ALICE, "list", "configmaps", ns="a"),
            False,
            id="resourceNames never grant list (no name)",
        ),
        pytest.param(
            rule("create", "core", "configmaps", "cfg"),
            attrs(ALICE, "create", "configmaps", ns="a"),
            False,
            id="resourceNames never grant create (name unknown at authorization)",
        ),
        pytest.param(
            rule("get", "core", "pods"),
            url(ALICE, "get", "/api"),
            False,
            id="a resource rule grants no non-resource URL",
        ),
    ],
)
def test_rule_matching(granted: Obj, request_: _authz.RequestAttributes, allowed: bool) -> None:
    assert granting(granted).authorize(request_) is allowed


@pytest.mark.parametrize(
    ("urls", "path", "allowed"),
    [
        pytest.param("/healthz", "/healthz", True, id="exact URL"),
        pytest.param("/healthz", "/healthz/etcd", False, id="exact URL is not a prefix"),
        pytest.param("/apis/*", "/apis/apps/v1", True, id="trailing star is a prefix match"),
        pytest.param("/apis/*", "/apis", False, id="trailing star needs the slash before it"),
        pytest.param("/api*", "/apis", True, id="trailing star without slash matches by prefix"),
        pytest.param("*", "/anything/at/all", True, id="star alone matches every URL"),
        pytest.param("/version", "/version/", False, id="trailing slash is a different URL"),
    ],
)
def test_non_resource_url_matching(urls: str, path: str, allowed: bool) -> None:
    assert granting(url_rule("get", urls)).authorize(url(ALICE, "get", path)) is allowed


def test_non_resource_rule_checks_the_verb() -> None:
    assert not granting(url_rule("get", "/metrics")).authorize(url(ALICE, "post", "/metrics"))


def test_non_resource_rule_grants_no_resource() -> None:
    assert not granting(url_rule("*", "*")).authorize(attrs(ALICE, "get", "pods", ns="a"))


# --- bindings and scope ----------------------------------------------------------------------------------

PODS_READER = cluster_role("pods-reader", rule("get list", "core", "pods"))


def test_clusterrolebinding_grants_in_every_namespace_and_cluster_wide() -> None:
    authz = authorizer(PODS_READER, cluster_binding("b", "pods-reader", user("alice")))
    assert authz.authorize(attrs(ALICE, "list", "pods", ns="a"))
    assert authz.authorize(attrs(ALICE, "list", "pods", ns="b"))
    assert authz.authorize(attrs(ALICE, "list", "pods"))


def test_rolebinding_to_a_role_grants_only_in_its_namespace() -> None:
    authz = authorizer(
        role("reader", "a", rule("get", "core", "pods")), binding("b", "a", "Role", "reader", user("alice"))
    )
    assert authz.authorize(attrs(ALICE, "get", "pods", ns="a", name="p"))
    assert not authz.authorize(attrs(ALICE, "get", "pods", ns="b", name="p"))
    assert not authz.authorize(attrs(ALICE, "list", "pods"))


def test_rolebinding_to_a_clusterrole_is_scoped_to_the_binding_namespace() -> None:
    authz = authorizer(PODS_READER, binding("b", "a", "ClusterRole", "pods-reader", user("alice")))
    assert authz.authorize(attrs(ALICE, "list", "pods", ns="a"))
    assert not authz.authorize(attrs(ALICE, "list", "pods", ns="b"))
    assert not authz.authorize(attrs(ALICE, "list", "pods")), "all-namespaces list is cluster scope"


def test_rolebinding_to_a_clusterrole_never_grants_cluster_scoped_resources() -> None:
    authz = authorizer(
        cluster_role("ns-reader", rule("get", "core", "namespaces")),
        binding("b", "a", "ClusterRole", "ns-reader", user("alice")),
    )
    assert not authz.authorize(attrs(ALICE, "get", "namespaces", name="a"))


def test_rolebinding_to_a_clusterrole_never_grants_non_resource_urls() -> None:
    authz = authorizer(
        cluster_role("metrics", url_rule("get", "/metrics")),
        binding("b", "a", "ClusterRole", "metrics", user("alice")),
    )
    assert not authz.authorize(url(ALICE, "get", "/metrics"))
    assert not authz.authorize(dataclasses.replace(url(ALICE, "get", "/metrics"), namespace="a"))


def test_rolebinding_resolves_a_role_in_its_own_namespace_only() -> None:
    authz = authorizer(
        role("reader", "other", rule("get", "core", "pods")),
        binding("b", "a", "Role", "reader", user("alice")),
    )
    decision = authz.decide(attrs(ALICE, "get", "pods", ns="a", name="p"))
    assert decision == _authz.Decision(False, 'RBAC: role.rbac.authorization.k8s.io "reader" not found')


@pytest.mark.parametrize(
    ("subject", "who", "applies"),
    [
        pytest.param(user("alice"), ALICE, True, id="User subject by name"),
        pytest.param(user("alice"), BOB, False, id="User subject for someone else"),
        pytest.param(group("devs"), BOB, True, id="Group subject for a member"),
        pytest.param(group("devs"), ALICE, False, id="Group subject for a non-member"),
        pytest.param(
            group("system:authenticated"), ROBOT, True, id="Group subject for every authenticated user"
        ),
        pytest.param(
            group("system:serviceaccounts:ops"), ROBOT, True, id="namespace's serviceaccounts group"
        ),
        pytest.param(sa("ops", "robot"), ROBOT, True, id="ServiceAccount subject with namespace"),
        pytest.param(sa("dev", "robot"), ROBOT, False, id="ServiceAccount of the same name elsewhere"),
        pytest.param(
            user("system:serviceaccount:ops:robot"), ROBOT, True, id="ServiceAccount as User subject"
        ),
        pytest.param(
            {"kind": "Robot", "name": "alice"}, ALICE, False, id="unknown subject kind applies to nobody"
        ),
    ],
)
def test_subjects(subject: Obj, who: _authz.UserInfo, applies: bool) -> None:
    authz = authorizer(PODS_READER, cluster_binding("b", "pods-reader", subject))
    assert authz.authorize(attrs(who, "list", "pods", ns="a")) is applies


def test_serviceaccount_subject_without_namespace_means_the_rolebinding_namespace() -> None:
    authz = authorizer(PODS_READER, binding("b", "ops", "ClusterRole", "pods-reader", sa(None, "robot")))
    assert authz.authorize(attrs(ROBOT, "list", "pods", ns="ops"))
    other = authorizer(PODS_READER, binding("b", "dev", "ClusterRole", "pods-reader", sa(None, "robot")))
    assert not other.authorize(attrs(ROBOT, "list", "pods", ns="dev"))


def test_serviceaccount_subject_without_namespace_in_a_clusterrolebinding_applies_to_nobody() -> None:
    authz = authorizer(PODS_READER, cluster_binding("b", "pods-reader", sa(None, "robot")))
    assert not authz.authorize(attrs(ROBOT, "list", "pods", ns="ops"))


def test_system_masters_is_allowed_everything_without_any_binding() -> None:
    authz = authorizer()
    assert authz.decide(attrs(ADMIN, "delete", "nodes", name="n1")) == _authz.Decision(True, "")
    assert authz.authorize(url(ADMIN, "get", "/debug/pprof"))


def test_allow_reason_names_the_binding_role_and_subject() -> None:
    authz = authorizer(
        PODS_READER,
        cluster_binding("readers", "pods-reader", group("nobody"), group("devs")),
        binding("rb", "ops", "ClusterRole", "pods-reader", sa(None, "robot")),
    )
    assert authz.decide(attrs(BOB, "get", "pods", ns="a", name="p")).reason == (
        'RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pods-reader" to Group "devs"'
    )
    assert authz.decide(attrs(ROBOT, "get", "pods", ns="ops", name="p")).reason == (
        'RBAC: allowed by RoleBinding "rb/ops" of ClusterRole "pods-reader" to ServiceAccount "robot/ops"'
    )


def test_binding_to_a_missing_role_grants_nothing_and_says_why() -> None:
    authz = authorizer(
        cluster_binding("b1", "gone", user("alice")),
        binding("b2", "a", "Role", "gone-too", user("alice")),
    )
    decision = authz.decide(attrs(ALICE, "get", "pods", ns="a", name="p"))
    assert decision == _authz.Decision(
        False,
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'role.rbac.authorization.k8s.io "gone-too" not found]',
    )


def test_bindings_are_additive_a_later_grant_still_allows() -> None:
    authz = authorizer(
        cluster_binding("broken", "gone", user("alice")),
        PODS_READER,
        binding("ok", "a", "ClusterRole", "pods-reader", user("alice")),
    )
    assert authz.authorize(attrs(ALICE, "get", "pods", ns="a", name="p"))


# --- forbidden messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param(
            attrs(ROBOT, "create", "rolebindings", group=RBAC, ns="team-a"),
            'rolebindings.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:ops:robot" '
            'cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" '
            'in the namespace "team-a"',
            id="namespaced create without a name",
        ),
        pytest.param(
            attrs(ROBOT, "update", "rolebindings", group=RBAC, ns="team-a", name="x"),
            'rolebindings.rbac.authorization.k8s.io "x" is forbidden: User "system:serviceaccount:ops:robot" '
            'cannot update resource "rolebindings" in API group "rbac.authorization.k8s.io" '
            'in the namespace "team-a"',
            id="namespaced request with a name",
        ),
        pytest.param(
            attrs(ALICE, "list", "namespaces"),
            'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" '
            "at the cluster scope",
            id="core group cluster scope",
        ),
        pytest.param(
            attrs(ALICE, "get", "pods", sub="log", ns="a", name="p"),
            'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" '
            'in the namespace "a"',
            id="subresource appears in the resource only",
        ),
        pytest.param(
            attrs(ALICE, "watch", "deployments", group="apps"),
            'deployments.apps is forbidden: User "alice" cannot watch resource "deployments" '
            'in API group "apps" at the cluster scope',
            id="grouped resource across namespaces",
        ),
        pytest.param(
            url(ALICE, "get", "/metrics"),
            'forbidden: User "alice" cannot get path "/metrics"',
            id="non-resource URL",
        ),
    ],
)
def test_forbidden_message_matches_kube_apiserver(request_: _authz.RequestAttributes, message: str) -> None:
    authz = authorizer()
    assert not authz.authorize(request_)
    assert authz.forbidden_message(request_) == message


def test_forbidden_message_appends_rbac_resolution_errors() -> None:
    authz = authorizer(cluster_binding("b", "missing", user("alice")))
    assert authz.forbidden_message(attrs(ALICE, "list", "pods", ns="a")) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "a": '
        'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found'
    )


def test_forbidden_message_quotes_like_go() -> None:
    odd = _authz.UserInfo('we"ird\\name')
    assert authorizer().forbidden_message(url(odd, "get", "/x")) == (
        'forbidden: User "we\\"ird\\\\name" cannot get path "/x"'
    )


def test_forbidden_message_escapes_html_characters_like_kube_apiserver() -> None:
    assert authorizer().forbidden_message(url(ALICE, "get", "/a<b>&c")) == (
        'forbidden: User "alice" cannot get path "/a&lt;b&gt;&amp;c"'
    )


def test_forbidden_status_body_has_kubernetes_shape() -> None:
    body = authorizer().forbidden_status(attrs(ALICE, "get", "deployments", group="apps", ns="a", name="d"))
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "d" is forbidden: User "alice" cannot get resource "deployments" '
        'in API group "apps" in the namespace "a"',
        "reason": "Forbidden",
        "details": {"name": "d", "group": "apps", "kind": "deployments"},
        "code": 403,
    }


def test_forbidden_status_for_a_url_has_empty_details() -> None:
    body = authorizer().forbidden_status(url(ALICE, "get", "/x"))
    assert body["details"] == {}
    assert body["message"] == 'forbidden: User "alice" cannot get path "/x"'


# --- escalation prevention: roles ----------------------------------------------------------------------


def escalation(
    authz: _authz.Authorizer, who: _authz.UserInfo, obj: Obj, old: Obj | None = None
) -> str | None:
    return authz.check_escalation(who, obj, old=old)


def test_creating_a_role_with_permissions_held_is_allowed() -> None:
    authz = granting(rule("get list watch", "core", "pods configmaps"))
    assert escalation(authz, ALICE, role("r", "a", rule("get", "core", "pods"))) is None


def test_creating_a_role_with_permissions_not_held_is_forbidden_with_the_missing_rules() -> None:
    authz = granting(rule("get", "core", "pods"))
    obj = role("r", "a", rule("get list", "core", "pods secrets"), rule("get", "apps", "deployments"))
    assert escalation(authz, ALICE, obj) == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["list"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}\n'
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}'
    )


def test_escalation_denial_is_a_403_status_naming_the_object() -> None:
    denial = granting().review_escalation(ROBOT, role("r", "a", rule("get", "core", "pods")))
    assert denial is not None
    assert denial.status()["code"] == 403
    assert denial.status()["reason"] == "Forbidden"
    assert denial.status()["details"] == {"name": "r", "group": RBAC, "kind": "roles"}
    assert denial.message.startswith(
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "system:serviceaccount:ops:robot" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:ops" "system:authenticated"]) '
    )


def test_role_permissions_must_be_held_in_the_role_namespace() -> None:
    authz = authorizer(PODS_READER, binding("b", "a", "ClusterRole", "pods-reader", user("alice")))
    obj = rule("get", "core", "pods")
    assert escalation(authz, ALICE, role("r", "a", obj)) is None
    assert escalation(authz, ALICE, role("r", "b", obj)) is not None


def test_clusterrole_permissions_must_be_held_cluster_wide() -> None:
    authz = authorizer(PODS_READER, binding("b", "a", "ClusterRole", "pods-reader", user("alice")))
    assert escalation(authz, ALICE, cluster_role("c", rule("get", "core", "pods"))) is not None


def test_escalate_verb_allows_creating_any_role() -> None:
    authz = granting(rule("escalate", RBAC, "roles"))
    assert escalation(authz, ALICE, role("r", "a", rule("*", "*", "*"))) is None


def test_escalate_on_roles_does_not_cover_clusterroles() -> None:
    authz = granting(rule("escalate", RBAC, "roles"))
    assert escalation(authz, ALICE, cluster_role("c", rule("get", "core", "pods"))) is not None


def test_escalate_with_resource_names_cannot_match_a_create() -> None:
    authz = granting(rule("escalate", RBAC, "roles", "r"))
    obj = role("r", "a", rule("get", "core", "secrets"))
    assert escalation(authz, ALICE, obj) is not None, "create: the name is not known to the authorizer"
    assert escalation(authz, ALICE, obj, old=role("r", "a")) is None, "update: the name matches"
    other = role("other", "a", rule("get", "core", "secrets"))
    assert escalation(authz, ALICE, other, old=role("other", "a")) is not None


def test_escalate_with_resource_names_matches_an_apply_that_creates_by_url_name() -> None:
    authz = granting(rule("escalate", RBAC, "roles", "r"))
    obj = role("r", "a", rule("get", "core", "secrets"))
    assert authz.check_escalation(ALICE, obj, request_name="r") is None
    assert authz.check_escalation(ALICE, obj, request_name="") is not None


@pytest.mark.parametrize(
    ("held", "granted", "allowed"),
    [
        pytest.param(
            rule("get", "core", "cm", "a b"), rule("get", "core", "cm", "a"), True, id="named subset"
        ),
        pytest.param(rule("get", "core", "cm", "a"), rule("get", "core", "cm", "b"), False, id="other name"),
        pytest.param(
            rule("get", "core", "cm", "a"), rule("get", "core", "cm"), False, id="named covers no all"
        ),
        pytest.param(rule("get", "core", "cm"), rule("get", "core", "cm", "z"), True, id="all covers named"),
        pytest.param(rule("get", "core", "*/scale"), rule("get", "core", "rc/scale"), True, id="star subres"),
        pytest.param(
            rule("get", "core", "*/scale"), rule("get", "core", "rc"), False, id="star subres no main"
        ),
        pytest.param(rule("get", "core", "rc"), rule("get", "core", "rc/scale"), False, id="main no subres"),
        pytest.param(
            rule("get", "*", "*"), rule("get", "x", "y", "z"), True, id="stars cover any group and name"
        ),
        pytest.param(rule("get", "*", "pods"), rule("get", "*", "pods"), True, id="group star covers star"),
        pytest.param(
            rule("get", "core", "pods"), rule("get", "*", "pods"), False, id="one group covers no star"
        ),
        pytest.param(rule("get", "core", "pods"), rule("get", "core", "*"), False, id="pods covers no star"),
        pytest.param(url_rule("get", "/logs/*"), url_rule("get", "/logs/a"), True, id="url prefix covers"),
        pytest.param(url_rule("get", "/logs/*"), url_rule("get", "/logs*"), False, id="url shorter prefix"),
        pytest.param(url_rule("get", "/a"), url_rule("get put", "/a"), False, id="url verb missing"),
        pytest.param(rule("get", "*", "*"), url_rule("get", "/a"), False, id="resource star covers no url"),
    ],
)
def test_covers_check(held: Obj, granted: Obj, allowed: bool) -> None:
    assert (escalation(granting(held), ALICE, cluster_role("c", granted)) is None) is allowed


def test_missing_non_resource_and_named_rules_are_listed() -> None:
    authz = granting()
    obj = cluster_role("c", url_rule("get", "/metrics"), rule("get update", "core", "cm", "x y"))
    message = escalation(authz, ALICE, obj)
    assert message is not None
    assert message.split("\n")[1:] == [
        '{APIGroups:[""], Resources:["cm"], ResourceNames:["x"], Verbs:["get" "update"]}',
        '{APIGroups:[""], Resources:["cm"], ResourceNames:["y"], Verbs:["get" "update"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]


def test_role_escalation_message_reports_resolution_errors() -> None:
    authz = authorizer(cluster_binding("b", "gone", user("alice")))
    message = escalation(authz, ALICE, cluster_role("c", rule("get", "core", "pods")))
    assert message is not None
    assert message.endswith('; resolution errors: [clusterroles.rbac.authorization.k8s.io "gone" not found]')


def test_aggregation_rule_needs_full_authority() -> None:
    narrow = granting(rule("get", "core", "pods"))
    obj = cluster_role("agg", aggregation=True)
    assert escalation(narrow, ALICE, obj) == (
        'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: '
        "must have cluster-admin privileges to use the aggregationRule"
    )
    admin_like = granting(rule("*", "*", "*"), url_rule("*", "*"))
    assert escalation(admin_like, ALICE, obj) is None


def test_removing_an_aggregation_rule_also_needs_full_authority() -> None:
    narrow = granting(rule("get", "core", "pods"))
    assert (
        escalation(narrow, ALICE, cluster_role("agg"), old=cluster_role("agg", aggregation=True)) is not None
    )


def test_update_changing_only_finalizers_is_allowed_without_permissions() -> None:
    old = role("r", "a", rule("*", "*", "*"))
    old["metadata"]["finalizers"] = ["x/y"]
    old["metadata"]["resourceVersion"] = "7"
    new = role("r", "a", rule("*", "*", "*"))
    assert escalation(granting(), ALICE, new, old=old) is None
    changed = role("r", "a", rule("*", "*", "*"), rule("get", "core", "pods"))
    assert escalation(granting(), ALICE, changed, old=old) is not None


def test_system_masters_may_write_any_rbac_object() -> None:
    authz = authorizer()
    assert escalation(authz, ADMIN, cluster_role("c", rule("*", "*", "*"))) is None
    assert escalation(authz, ADMIN, binding("b", "a", "ClusterRole", "does-not-exist", user("x"))) is None


def test_non_rbac_kind_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match=r"^kind:"):
        authorizer().check_escalation(ALICE, {"kind": "Pod", "metadata": {"name": "p"}})


# --- escalation prevention: bindings -------------------------------------------------------------------

OPERATOR_ROLE = cluster_role("operator", rule("get list watch", "core", "pods"))
ADMIN_ROLE = cluster_role("cluster-admin", rule("*", "*", "*"), url_rule("*", "*"))


def test_binding_a_role_whose_permissions_are_held_is_allowed() -> None:
    authz = authorizer(
        OPERATOR_ROLE, PODS_READER, binding("mine", "a", "ClusterRole", "pods-reader", user("alice"))
    )
    obj = binding("new", "a", "ClusterRole", "pods-reader", user("bob"))
    assert escalation(authz, ALICE, obj) is None


def test_binding_a_role_whose_permissions_are_not_held_is_forbidden() -> None:
    authz = authorizer(
        OPERATOR_ROLE, PODS_READER, binding("mine", "a", "ClusterRole", "pods-reader", user("alice"))
    )
    obj = binding("new", "a", "ClusterRole", "operator", user("bob"))
    assert escalation(authz, ALICE, obj) == (
        'rolebindings.rbac.authorization.k8s.io "new" is forbidden: user "alice" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}'
    )


def test_held_permissions_count_only_in_the_binding_namespace() -> None:
    authz = authorizer(PODS_READER, binding("mine", "a", "ClusterRole", "pods-reader", user("alice")))
    assert (
        escalation(authz, ALICE, binding("new", "b", "ClusterRole", "pods-reader", user("bob"))) is not None
    )


def test_binding_a_namespaced_role_checks_that_role() -> None:
    authz = authorizer(
        role("reader", "a", rule("get", "core", "pods")),
        PODS_READER,
        binding("mine", "a", "ClusterRole", "pods-reader", user("alice")),
    )
    assert escalation(authz, ALICE, binding("new", "a", "Role", "reader", user("bob"))) is None


def bind_grant(names: str = "", *, kind: str = "clusterroles") -> Obj:
    return cluster_role("binder", rule("bind", RBAC, kind, names))


def test_bind_with_resource_names_allows_binding_exactly_that_clusterrole() -> None:
    authz = authorizer(
        ADMIN_ROLE, OPERATOR_ROLE, bind_grant("operator"), cluster_binding("d", "binder", sa("ops", "robot"))
    )
    assert (
        escalation(authz, ROBOT, binding("g", "team-a", "ClusterRole", "operator", sa("ops", "op"))) is None
    )
    denied = escalation(authz, ROBOT, binding("g", "team-a", "ClusterRole", "cluster-admin", sa("ops", "op")))
    assert denied is not None
    assert denied.startswith(
        'rolebindings.rbac.authorization.k8s.io "g" is forbidden: user "system:serviceaccount:ops:robot" '
        '(groups=["system:serviceaccounts" "system:serviceaccounts:ops" "system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
    )
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in denied
    assert '{NonResourceURLs:["*"], Verbs:["*"]}' in denied


def test_bind_on_clusterroles_does_not_cover_roles_of_the_same_name() -> None:
    authz = authorizer(
        role("operator", "a", rule("get", "core", "secrets")),
        bind_grant("operator"),
        cluster_binding("d", "binder", user("alice")),
    )
    assert escalation(authz, ALICE, binding("g", "a", "Role", "operator", user("bob"))) is not None


def test_bind_on_roles_allows_binding_a_role() -> None:
    authz = authorizer(
        role("secret-reader", "a", rule("get", "core", "secrets")),
        bind_grant(kind="roles"),
        cluster_binding("d", "binder", user("alice")),
    )
    assert escalation(authz, ALICE, binding("g", "a", "Role", "secret-reader", user("bob"))) is None


def test_bind_granted_by_a_rolebinding_works_only_in_that_namespace() -> None:
    authz = authorizer(
        OPERATOR_ROLE, bind_grant("operator"), binding("d", "a", "ClusterRole", "binder", user("alice"))
    )
    assert escalation(authz, ALICE, binding("g", "a", "ClusterRole", "operator", user("bob"))) is None
    assert escalation(authz, ALICE, binding("g", "b", "ClusterRole", "operator", user("bob"))) is not None
    crb = cluster_binding("g", "operator", user("bob"))
    assert escalation(authz, ALICE, crb) is not None, "a ClusterRoleBinding needs bind at cluster scope"


def test_clusterrolebinding_with_cluster_bind_is_allowed() -> None:
    authz = authorizer(OPERATOR_ROLE, bind_grant("operator"), cluster_binding("d", "binder", user("alice")))
    assert escalation(authz, ALICE, cluster_binding("g", "operator", user("bob"))) is None


def test_binding_a_missing_role_without_bind_is_not_found() -> None:
    authz = granting(rule("get list watch create update", "*", "*"))
    denial = authz.review_escalation(ALICE, binding("g", "a", "ClusterRole", "ghost", user("bob")))
    assert denial == _authz.Denial(
        404,
        "NotFound",
        'clusterroles.rbac.authorization.k8s.io "ghost" not found',
        name="ghost",
        group=RBAC,
        kind="clusterroles",
    )
    role_denial = authz.review_escalation(ALICE, binding("g", "a", "Role", "ghost", user("bob")))
    assert role_denial is not None
    assert role_denial.message == 'roles.rbac.authorization.k8s.io "ghost" not found'


def test_binding_a_missing_role_with_bind_is_allowed() -> None:
    authz = authorizer(bind_grant("ghost"), cluster_binding("d", "binder", user("alice")))
    assert escalation(authz, ALICE, binding("g", "a", "ClusterRole", "ghost", user("bob"))) is None


def test_binding_update_changing_only_finalizers_is_allowed() -> None:
    authz = authorizer(ADMIN_ROLE)
    old = binding("g", "a", "ClusterRole", "cluster-admin", user("bob"))
    old["metadata"]["finalizers"] = ["discovery.toolhive.stacklok.dev/grant"]
    new = binding("g", "a", "ClusterRole", "cluster-admin", user("bob"))
    assert escalation(authz, ALICE, new, old=old) is None
    subjects_changed = binding("g", "a", "ClusterRole", "cluster-admin", user("eve"))
    assert escalation(authz, ALICE, subjects_changed, old=old) is not None


def test_binding_with_an_unknown_role_kind_fails_rule_resolution() -> None:
    obj = binding("g", "a", "Group", "x", user("bob"))
    denial = authorizer().review_escalation(ALICE, obj)
    assert denial is not None
    assert (denial.code, denial.message) == (
        500,
        'Internal error occurred: unsupported role reference kind: "Group"',
    )


# --- SelfSubjectRulesReview --------------------------------------------------------------------------


def test_rules_review_lists_cluster_then_namespace_rules_unmerged() -> None:
    authz = authorizer(
        cluster_role("c", rule("get", "core", "namespaces"), url_rule("get", "/healthz")),
        cluster_binding("cb", "c", user("alice")),
        role("r", "a", rule("list watch", "apps", "deployments", "web")),
        binding("rb", "a", "Role", "r", user("alice")),
        role("r", "b", rule("delete", "core", "pods")),
        binding("rb", "b", "Role", "r", user("alice")),
    )
    assert authz.rules_review(ALICE, "a") == {
        "resourceRules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"]},
            {
                "verbs": ["list", "watch"],
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "resourceNames": ["web"],
            },
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        "incomplete": False,
    }


def test_rules_review_reports_unresolvable_bindings() -> None:
    status = authorizer(binding("rb", "a", "Role", "ghost", user("alice"))).rules_review(ALICE, "a")
    assert status == {
        "resourceRules": [],
        "nonResourceRules": [],
        "incomplete": False,
        "evaluationError": 'role.rbac.authorization.k8s.io "ghost" not found',
    }


# --- bootstrap policy ------------------------------------------------------------------------------------


def bootstrapped(*extra: Obj) -> _authz.Authorizer:
    return authorizer(*_authz.bootstrap_objects(), *extra)


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        pytest.param(url(ALICE, "get", "/api"), True, id="authenticated user reads /api"),
        pytest.param(url(ALICE, "get", "/apis"), True, id="authenticated user reads /apis"),
        pytest.param(url(ALICE, "get", "/apis/apps/v1"), True, id="authenticated user reads a group version"),
        pytest.param(url(ALICE, "get", "/api/v1"), True, id="authenticated user reads core v1 discovery"),
        pytest.param(url(ALICE, "get", "/version"), True, id="authenticated user reads /version"),
        pytest.param(url(ALICE, "get", "/openapi/v2"), True, id="authenticated user reads openapi"),
        pytest.param(url(ALICE, "post", "/api"), False, id="discovery is read-only"),
        pytest.param(url(ALICE, "get", "/metrics"), False, id="authenticated user cannot read /metrics"),
        pytest.param(
            attrs(ALICE, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
            True,
            id="authenticated user creates a SelfSubjectAccessReview",
        ),
        pytest.param(
            attrs(ALICE, "create", "selfsubjectrulesreviews", group="authorization.k8s.io"),
            True,
            id="authenticated user creates a SelfSubjectRulesReview",
        ),
        pytest.param(
            attrs(ALICE, "create", "subjectaccessreviews", group="authorization.k8s.io"),
            False,
            id="authenticated user cannot review other subjects",
        ),
        pytest.param(attrs(ALICE, "list", "pods", ns="a"), False, id="authenticated user cannot list pods"),
        pytest.param(attrs(ROBOT, "list", "namespaces"), False, id="serviceaccount cannot list namespaces"),
    ],
)
def test_bootstrap_policy_for_an_authenticated_user(
    request_: _authz.RequestAttributes, allowed: bool
) -> None:
    assert bootstrapped().authorize(request_) is allowed


ANONYMOUS = _authz.UserInfo("system:anonymous", ("system:unauthenticated",))


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        pytest.param("/version", True, id="anonymous reads /version"),
        pytest.param("/healthz", True, id="anonymous reads /healthz"),
        pytest.param("/readyz", True, id="anonymous reads /readyz"),
        pytest.param("/api", False, id="anonymous cannot read /api"),
        pytest.param("/apis", False, id="anonymous cannot read /apis"),
    ],
)
def test_bootstrap_policy_for_anonymous(path: str, allowed: bool) -> None:
    assert bootstrapped().authorize(url(ANONYMOUS, "get", path)) is allowed


def test_system_masters_rules_review_shows_cluster_admin() -> None:
    status = bootstrapped().rules_review(ADMIN, "default")
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in status["resourceRules"]
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} in status["nonResourceRules"]


def test_bootstrap_objects_are_fresh_labelled_rbac_v1_objects() -> None:
    first, second = _authz.bootstrap_objects(), _authz.bootstrap_objects()
    assert first == second
    assert first[0] is not second[0]
    names = {(o["kind"], o["metadata"]["name"]) for o in first}
    for name in ("cluster-admin", "system:discovery", "system:basic-user", "system:public-info-viewer"):
        assert ("ClusterRole", name) in names
        assert ("ClusterRoleBinding", name) in names
    for obj in first:
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert obj["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults"}


# --- the discovery least-privilege grant (issue 4) -----------------------------------------------------


def discovery_cluster() -> _authz.Authorizer:
    manager = cluster_role("toolhive-operator-manager-role", rule("get list watch", "core", "pods"))
    discovery = cluster_role(
        "toolhive-discovery",
        rule("get list watch", "core", "namespaces"),
        rule("get list watch create update patch delete", RBAC, "rolebindings"),
        rule("bind", RBAC, "clusterroles", "toolhive-operator-manager-role"),
    )
    return bootstrapped(
        manager,
        discovery,
        cluster_role("edit", rule("*", "core", "secrets configmaps")),
        cluster_binding(
            "toolhive-discovery", "toolhive-discovery", sa("toolhive-system", "toolhive-discovery")
        ),
    )


DISCOVERY = _authz.serviceaccount_user("toolhive-system", "toolhive-discovery")


def test_discovery_can_grant_the_operator_clusterrole_in_any_namespace() -> None:
    authz = discovery_cluster()
    grant = binding(
        "toolhive-operator",
        "team-a",
        "ClusterRole",
        "toolhive-operator-manager-role",
        sa("toolhive-system", "op"),
    )
    assert authz.authorize(attrs(DISCOVERY, "create", "rolebindings", group=RBAC, ns="team-a"))
    assert authz.check_escalation(DISCOVERY, grant) is None


@pytest.mark.parametrize("target", ["cluster-admin", "edit"])
def test_discovery_cannot_bind_any_other_clusterrole(target: str) -> None:
    authz = discovery_cluster()
    grant = binding("sneaky", "team-a", "ClusterRole", target, sa("toolhive-system", "op"))
    message = authz.check_escalation(DISCOVERY, grant)
    assert message is not None
    assert "is attempting to grant RBAC permissions not currently held" in message


# --- live objects and caching ---------------------------------------------------------------------------


def test_without_a_version_every_call_sees_the_current_objects() -> None:
    store = Store(PODS_READER)
    authz = _authz.Authorizer(store)
    request_ = attrs(ALICE, "list", "pods", ns="a")
    assert not authz.authorize(request_)
    store.objs.append(binding("b", "a", "ClusterRole", "pods-reader", user("alice")))
    assert authz.authorize(request_)
    store.objs.pop()
    assert not authz.authorize(request_)


def test_only_the_request_namespace_rolebindings_are_read() -> None:
    store = Store(
        PODS_READER, *(binding(f"b{i}", f"ns{i}", "ClusterRole", "pods-reader", user("x")) for i in range(50))
    )
    _authz.Authorizer(store).authorize(attrs(ALICE, "list", "pods", ns="ns7"))
    assert ("RoleBinding", "ns7") in store.calls
    assert all(kind != "RoleBinding" or ns == "ns7" for kind, ns in store.calls)


def test_versioned_store_is_cached_until_its_version_changes() -> None:
    store = VersionedStore(PODS_READER)
    authz = _authz.Authorizer(store)
    request_ = attrs(ALICE, "list", "pods", ns="a")
    assert not authz.authorize(request_)
    reads = len(store.calls)
    store.objs.append(binding("b", "a", "ClusterRole", "pods-reader", user("alice")))
    assert not authz.authorize(request_), "same version: the cached resolution answers"
    assert len(store.calls) == reads, "a cache hit reads nothing from the store"
    store.version += 1
    assert authz.authorize(request_)


def test_a_write_during_resolution_is_not_cached() -> None:
    class Racing(VersionedStore):
        def rbac_objects(
            self, kind: _authz.RbacKind, namespace: str | None = None
        ) -> Iterable[Mapping[str, Any]]:
            self.version += 1  # a write lands while the authorizer reads
            return super().rbac_objects(kind, namespace)

    store = Racing(PODS_READER, cluster_binding("b", "pods-reader", user("alice")))
    authz = _authz.Authorizer(store)
    assert authz.authorize(attrs(ALICE, "list", "pods", ns="a"))
    reads = len(store.calls)
    authz.authorize(attrs(ALICE, "list", "pods", ns="a"))
    assert len(store.calls) > reads, "nothing was cached from a resolution that raced a write"


def test_many_bindings_authorize_quickly_from_cache() -> None:
    objs: list[Obj] = [PODS_READER]
    for i in range(300):
        objs.append(
            binding(f"b{i}", f"ns{i % 100}", "ClusterRole", "pods-reader", sa(f"ns{i % 100}", f"sa{i}"))
        )
    authz = _authz.Authorizer(VersionedStore(*objs))
    users = [_authz.serviceaccount_user(f"ns{i % 100}", f"sa{i}") for i in range(300)]
    for _ in range(10):
        for i, who in enumerate(users):
            assert authz.authorize(attrs(who, "list", "pods", ns=f"ns{i % 100}"))
            assert not authz.authorize(attrs(who, "list", "pods", ns=f"ns{(i + 1) % 100}"))


# --- ClusterRole aggregation ---------------------------------------------------------------------------


def labelled(obj: Obj, **labels: str) -> Obj:
    obj["metadata"]["labels"] = labels
    return obj


def aggregating(name: str, *selectors: Obj) -> Obj:
    return {
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "aggregationRule": {"clusterRoleSelectors": list(selectors)},
    }


def test_aggregation_gathers_matching_roles_rules_in_name_order_without_duplicates() -> None:
    roles = [
        aggregating("monitoring", {"matchLabels": {"agg": "mon"}}),
        labelled(
            cluster_role("b-pods", rule("get", "core", "pods"), rule("list", "core", "pods")), agg="mon"
        ),
        labelled(
            cluster_role("a-nodes", rule("get", "core", "nodes"), rule("get", "core", "pods")), agg="mon"
        ),
        labelled(cluster_role("other", rule("*", "*", "*")), agg="nope"),
    ]
    assert _authz.aggregate_cluster_roles(roles) == {
        "monitoring": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
        ]
    }


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a"]}]}, {"t": "a"}, True, id="In"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a"]}]},
            {"t": "b"},
            False,
            id="In other",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]},
            {},
            True,
            id="NotIn absent",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True, id="Exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]},
            {"t": "x"},
            False,
            id="DoesNotExist",
        ),
        pytest.param(
            {"matchLabels": {"t": "a"}, "matchExpressions": [{"key": "u", "operator": "Exists"}]},
            {"t": "a"},
            False,
            id="all ANDed",
        ),
    ],
)
def test_aggregation_selector_operators(selector: Obj, labels: dict[str, str], selected: bool) -> None:
    roles = [
        aggregating("agg", selector),
        labelled(cluster_role("src", rule("get", "core", "pods")), **labels),
    ]
    assert bool(_authz.aggregate_cluster_roles(roles)["agg"]) is selected


def test_aggregation_with_an_invalid_selector_changes_nothing() -> None:
    bad = {"matchExpressions": [{"key": "t", "operator": "In"}]}
    roles = [aggregating("agg", bad), labelled(cluster_role("src", rule("get", "core", "pods")), t="a")]
    assert _authz.aggregate_cluster_roles(roles) == {}


def test_aggregation_never_includes_the_role_itself_and_chains_converge() -> None:
    top = labelled(aggregating("top", {"matchLabels": {"level": "x"}}), level="x")
    middle = labelled(aggregating("middle", {"matchLabels": {"level": "y"}}), level="x")
    leaf = labelled(cluster_role("leaf", rule("get", "core", "pods")), level="y")
    assert _authz.aggregate_cluster_roles([top, middle, leaf]) == {
        "top": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        "middle": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
    }

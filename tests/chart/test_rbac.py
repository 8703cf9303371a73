"""Structural assertions on the rendered RBAC: exact rules, who binds what, where, and name uniqueness."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart import objects
from tests.tools import helm as helm_tool
from toolhive import rbac_rules
from toolhive.api import models
from toolhive.builders import rbac as proxy_rbac

MANAGER_ROLE = "toolhive-operator-manager-role"
CRUD = ("create", "delete", "get", "list", "patch", "update", "watch")


def table(*rows: tuple[str, tuple[str, ...], tuple[str, ...]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for group, resources, verbs in rows
        for resource in resources
        for verb in verbs
    }


# The operator ClusterRole table from the team brief, row for row.
OPERATOR_TABLE = table(
    ("", ("configmaps", "serviceaccounts", "services"), CRUD),
    ("", ("pods",), ("get", "list", "watch")),
    ("", ("pods/log",), ("get",)),
    ("", ("pods/attach",), ("create", "get")),
    ("", ("events",), ("create",)),
    ("apps", ("deployments", "statefulsets"), CRUD),
    ("rbac.authorization.k8s.io", ("roles", "rolebindings"), CRUD),
    ("toolhive.stacklok.dev", ("mcpservers",), ("get", "list", "patch", "update", "watch")),
    ("toolhive.stacklok.dev", ("mcpservers/status",), ("get", "patch", "update")),
    ("toolhive.stacklok.dev", ("mcpservers/finalizers",), ("update",)),
)

# Discovery's ClusterRole without its `bind` rule (checked separately: it carries resourceNames).
DISCOVERY_TABLE = table(
    ("", ("namespaces",), ("get", "list", "watch")),
    ("rbac.authorization.k8s.io", ("rolebindings",), CRUD),
    ("toolhive.stacklok.dev", ("namespacediscoveries",), ("get", "list", "watch")),
    ("toolhive.stacklok.dev", ("namespacediscoveries/status",), ("patch",)),
    ("", ("events",), ("create",)),
)


def as_policy_rules(rules: list[objects.Manifest]) -> list[rbac_rules.PolicyRule]:
    return [
        rbac_rules.PolicyRule(tuple(rule["apiGroups"]), tuple(rule["resources"]), tuple(rule["verbs"]))
        for rule in rules
    ]


@pytest.fixture(scope="module")
def rendered(helm: helm_tool.Helm, chart: Path) -> dict[str, list[objects.Manifest]]:
    return {mode: helm.template(chart, values=values) for mode, values in objects.MODES.items()}


def test_operator_cluster_role_is_exactly_the_team_table_and_the_code_table(
    rendered: dict[str, list[objects.Manifest]],
) -> None:
    for mode in ("cluster", "static", "discovery"):
        role = objects.named(rendered[mode], "ClusterRole", MANAGER_ROLE)
        granted = objects.triples(role["rules"])
        assert granted == OPERATOR_TABLE, (
            f"{mode}: extra {granted - OPERATOR_TABLE}, missing {OPERATOR_TABLE - granted}"
        )
    code_table = {triple for rule in rbac_rules.OPERATOR_CLUSTER_ROLE_RULES for triple in rule.grants()}
    assert code_table == OPERATOR_TABLE


@pytest.mark.parametrize(
    "transport", list(models.Transport), ids=lambda t: f"{t.value} proxy-runner Role is covered"
)
def test_operator_holds_every_permission_of_the_proxy_runner_role_it_creates(
    rendered: dict[str, list[objects.Manifest]], transport: models.Transport
) -> None:
    # Kubernetes' escalation check: the operator may create a Role only if it holds all of it.
    for mode in objects.MODES:
        held = [
            rule
            for doc in rendered[mode]
            if doc["kind"] in ("ClusterRole", "Role")
            and doc["metadata"]["name"] != "toolhive-operator-leader-election"
            for rule in doc["rules"]
            if "resourceNames" not in rule
        ]
        missing = rbac_rules.uncovered(proxy_rbac.proxy_runner_rules(transport), by=as_policy_rules(held))
        assert missing == [], f"{mode}: {missing}"


def test_fully_namespaced_roles_carry_exactly_the_manager_rules(
    rendered: dict[str, list[objects.Manifest]],
) -> None:
    roles = [
        doc
        for doc in objects.of_kind(rendered["namespaced"], "Role")
        if "leader-election" not in doc["metadata"]["name"]
    ]
    assert len(roles) == 2
    for role in roles:
        assert objects.triples(role["rules"]) == OPERATOR_TABLE


@pytest.mark.parametrize("mode", ["static", "discovery", "namespaced"], ids=lambda m: f"{m} mode")
def test_namespace_modes_give_the_operator_no_cluster_wide_binding_to_its_role(
    rendered: dict[str, list[objects.Manifest]], mode: str
) -> None:
    for binding in objects.of_kind(rendered[mode], "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] != MANAGER_ROLE
        if any(subject["name"] == "toolhive-operator" for subject in binding["subjects"]):
            role = objects.named(rendered[mode], "ClusterRole", binding["roleRef"]["name"])
            # The one cluster-wide grant: reading its own NamespaceDiscovery object, by name.
            assert role["rules"] == [
                {
                    "apiGroups": ["toolhive.stacklok.dev"],
                    "resources": ["namespacediscoveries"],
                    "resourceNames": ["toolhive-operator"],
                    "verbs": ["get", "list", "watch"],
                }
            ]


def test_discovery_cluster_role_is_narrow_and_bind_is_limited_to_the_operator_role(
    rendered: dict[str, list[objects.Manifest]],
) -> None:
    role = objects.named(rendered["discovery"], "ClusterRole", "toolhive-discovery")
    bind_rules = [rule for rule in role["rules"] if "bind" in rule["verbs"]]
    assert bind_rules == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": [MANAGER_ROLE],
            "verbs": ["bind"],
        }
    ]
    assert objects.triples(rule for rule in role["rules"] if rule not in bind_rules) == DISCOVERY_TABLE
    code_table = {triple for rule in rbac_rules.DISCOVERY_CLUSTER_ROLE_RULES for triple in rule.grants()}
    assert code_table == DISCOVERY_TABLE, "the chart and toolhive.rbac_rules must grant discovery the same"
    binding = objects.named(rendered["discovery"], "ClusterRoleBinding", "toolhive-discovery")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "toolhive-discovery", "namespace": "toolhive-system"}
    ]


@pytest.mark.parametrize("mode", sorted(objects.MODES), ids=lambda m: f"{m} mode")
def test_no_rendered_role_can_escalate_impersonate_or_read_secrets(
    rendered: dict[str, list[objects.Manifest]], mode: str
) -> None:
    for doc in rendered[mode]:
        for rule in doc.get("rules", []):
            assert not {"escalate", "impersonate", "*"} & set(rule["verbs"]), (objects.key(doc), rule)
            assert "*" not in rule["resources"] and "secrets" not in rule["resources"], (
                objects.key(doc),
                rule,
            )
            if "bind" in rule["verbs"]:
                assert rule.get("resourceNames") == [MANAGER_ROLE], (objects.key(doc), rule)


@pytest.mark.parametrize("mode", sorted(objects.MODES), ids=lambda m: f"{m} mode")
def test_leases_are_granted_in_the_release_namespace_only(
    rendered: dict[str, list[objects.Manifest]], mode: str
) -> None:
    for doc in rendered[mode]:
        grants_leases = any("leases" in rule["resources"] for rule in doc.get("rules", []))
        if grants_leases:
            assert doc["kind"] == "Role" and doc["metadata"]["namespace"] == "toolhive-system", objects.key(
                doc
            )


@pytest.mark.parametrize("mode", sorted(objects.MODES), ids=lambda m: f"{m} mode")
def test_every_binding_points_at_a_rendered_role_and_a_release_service_account(
    rendered: dict[str, list[objects.Manifest]], mode: str
) -> None:
    docs = rendered[mode]
    accounts = {doc["metadata"]["name"] for doc in objects.of_kind(docs, "ServiceAccount")}
    for binding in (*objects.of_kind(docs, "RoleBinding"), *objects.of_kind(docs, "ClusterRoleBinding")):
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace")
        roles = [
            doc
            for doc in objects.of_kind(docs, ref["kind"])
            if doc["metadata"]["name"] == ref["name"]
            and doc["metadata"].get("namespace") in (None, namespace)
        ]
        assert len(roles) == 1, f"{objects.key(binding)} references a missing {ref}"
        for subject in binding["subjects"]:
            assert subject["namespace"] == "toolhive-system" and subject["name"] in accounts, subject


def test_two_fully_namespaced_releases_sharing_a_namespace_have_disjoint_names(
    helm: helm_tool.Helm, chart: Path
) -> None:
    def namespaced(allowed: list[str]) -> dict[str, object]:
        return {
            "operator": {"rbac": {"scope": "namespace", "namespaced": True, "allowedNamespaces": allowed}}
        }

    same_name_a = helm.template(chart, values=namespaced(["team-a", "shared"]), namespace="team-a")
    same_name_b = helm.template(chart, values=namespaced(["team-b", "shared"]), namespace="team-b")
    assert not {objects.key(doc) for doc in same_name_a} & {objects.key(doc) for doc in same_name_b}

    one_namespace_a = helm.template(chart, values=namespaced(["shared"]), release="ops-a", namespace="tools")
    one_namespace_b = helm.template(chart, values=namespaced(["shared"]), release="ops-b", namespace="tools")
    assert not {objects.key(doc) for doc in one_namespace_a} & {objects.key(doc) for doc in one_namespace_b}


def test_cluster_scoped_names_follow_the_release(helm: helm_tool.Helm, chart: Path) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY, release="thv")
    cluster_scoped = sorted(objects.key(doc) for doc in docs if doc["kind"] in objects.CLUSTER_SCOPED_KINDS)
    assert cluster_scoped == [
        ("ClusterRole", "", "thv-toolhive-discovery"),
        ("ClusterRole", "", "thv-toolhive-operator-discovery-reader"),
        ("ClusterRole", "", "thv-toolhive-operator-manager-role"),
        ("ClusterRoleBinding", "", "thv-toolhive-discovery"),
        ("ClusterRoleBinding", "", "thv-toolhive-operator-discovery-reader"),
        ("NamespaceDiscovery", "", "thv-toolhive-operator"),
    ]
    bind = next(
        rule
        for rule in objects.named(docs, "ClusterRole", "thv-toolhive-discovery")["rules"]
        if "bind" in rule["verbs"]
    )
    assert bind["resourceNames"] == ["thv-toolhive-operator-manager-role"]


def test_long_names_are_fitted_to_63_characters_and_stay_unique(helm: helm_tool.Helm, chart: Path) -> None:
    release = "a-long-release-name-for-a-platform-team-that-likes-it"  # helm allows 53 characters
    long_base = {"fullnameOverride": "x" * 54 + "-operator"}  # 63 characters
    renders = [
        helm.template(chart, values=objects.NAMESPACED, release=release, namespace="n" * 63),
        helm.template(chart, values=objects.merged(objects.DISCOVERY, long_base), release=release),
    ]
    for docs in renders:
        names = [doc["metadata"]["name"] for doc in docs]
        assert all(len(name) <= 63 for name in names), names
        assert len({objects.key(doc) for doc in docs}) == len(docs)

"""One test per mode: which objects render, and what the processes are told through their environment.

The environment is also fed to the real settings model, so a variable the chart renders that the code
does not read (a renamed field, a typo) fails here rather than in a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.chart import objects
from tests.tools import helm as helm_tool
from toolhive import settings

MANAGER_ROLE = "toolhive-operator-manager-role"


def operator_env(docs: list[objects.Manifest]) -> dict[str, Any]:
    return objects.env(objects.named(docs, "Deployment", "toolhive-operator"))


def discovery_objects(docs: list[objects.Manifest]) -> list[tuple[str, str, str]]:
    return [
        objects.key(doc)
        for doc in docs
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "discovery"
    ]


def bindings_of(docs: list[objects.Manifest], role: str) -> list[objects.Manifest]:
    return [
        doc
        for doc in docs
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding") and doc["roleRef"]["name"] == role
    ]


def test_cluster_mode_binds_the_manager_role_cluster_wide_without_discovery(
    helm: helm_tool.Helm, chart: Path
) -> None:
    docs = helm.template(chart, values=objects.CLUSTER)
    objects.named(docs, "ClusterRole", MANAGER_ROLE)
    binding = objects.named(docs, "ClusterRoleBinding", "toolhive-operator-manager-rolebinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": MANAGER_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "toolhive-operator", "namespace": "toolhive-system"}
    ]
    assert [objects.key(doc) for doc in bindings_of(docs, MANAGER_ROLE)] == [objects.key(binding)]
    assert discovery_objects(docs) == []
    env = operator_env(docs)
    assert env["TOOLHIVE_RBAC__SCOPE"] == "cluster"
    assert "WATCH_NAMESPACE" not in env
    assert "TOOLHIVE_DISCOVERY__ENABLED" not in env


def test_static_mode_renders_one_rolebinding_per_allowed_namespace_like_toolhive(
    helm: helm_tool.Helm, chart: Path
) -> None:
    docs = helm.template(chart, values=objects.STATIC)
    objects.named(docs, "ClusterRole", MANAGER_ROLE)
    assert objects.of_kind(docs, "ClusterRoleBinding") == []
    bindings = bindings_of(docs, MANAGER_ROLE)
    assert sorted(doc["metadata"]["namespace"] for doc in bindings) == ["production", "staging"]
    for binding in bindings:
        assert binding["kind"] == "RoleBinding"
        assert binding["metadata"]["name"] == "toolhive-operator-manager-rolebinding"
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "toolhive-operator", "namespace": "toolhive-system"}
        ]
    assert discovery_objects(docs) == []
    env = operator_env(docs)
    assert env["TOOLHIVE_RBAC__SCOPE"] == "namespace"
    assert env["WATCH_NAMESPACE"] == "staging,production"
    assert "TOOLHIVE_DISCOVERY__ENABLED" not in env


def test_discovery_mode_renders_discovery_and_leaves_every_grant_to_it(
    helm: helm_tool.Helm, chart: Path
) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY)
    objects.named(docs, "ClusterRole", MANAGER_ROLE)
    assert bindings_of(docs, MANAGER_ROLE) == [], "discovery owns every grant, the static list's included"
    assert sorted(discovery_objects(docs)) == [
        ("ClusterRole", "", "toolhive-discovery"),
        ("ClusterRoleBinding", "", "toolhive-discovery"),
        ("Deployment", "toolhive-system", "toolhive-discovery"),
        ("NamespaceDiscovery", "", "toolhive-operator"),
        ("PodDisruptionBudget", "toolhive-system", "toolhive-discovery"),
        ("Role", "toolhive-system", "toolhive-discovery-leader-election"),
        ("RoleBinding", "toolhive-system", "toolhive-discovery-leader-election"),
        ("ServiceAccount", "toolhive-system", "toolhive-discovery"),
    ]
    discovery = objects.named(docs, "Deployment", "toolhive-discovery")
    assert discovery["spec"]["template"]["spec"]["serviceAccountName"] == "toolhive-discovery"
    assert objects.container(discovery)["args"] == ["discovery"]
    nsd = objects.named(docs, "NamespaceDiscovery", "toolhive-operator")
    assert nsd["apiVersion"] == "toolhive.stacklok.dev/v1alpha1"
    assert nsd["spec"] == {
        "selectors": [{"matchLabels": {"toolhive.stacklok.dev/enabled": "true"}}],
        "namespaces": ["staging", "production"],
        "denyNamespaces": ["kube-system", "kube-public", "kube-node-lease"],
    }
    expected_discovery_env = {
        "TOOLHIVE_DISCOVERY__ENABLED": "true",
        "TOOLHIVE_DISCOVERY__RESOURCE_NAME": "toolhive-operator",
        "TOOLHIVE_DISCOVERY__CLUSTER_ROLE": MANAGER_ROLE,
        "TOOLHIVE_DISCOVERY__SUBJECT_NAME": "toolhive-operator",
        "TOOLHIVE_DISCOVERY__SUBJECT_NAMESPACE": "toolhive-system",
        "TOOLHIVE_DISCOVERY__ROLEBINDING_NAME": "toolhive-operator",
        "TOOLHIVE_DISCOVERY__RELEASE_GRACE_SECONDS": "30",
        "TOOLHIVE_RBAC__SCOPE": "namespace",
    }
    for env in (operator_env(docs), objects.env(discovery)):
        assert {name: env.get(name) for name in expected_discovery_env} == expected_discovery_env
        assert "WATCH_NAMESPACE" not in env, "in discovery mode the operator follows published membership"


def test_namespaced_mode_renders_roles_and_no_cluster_scoped_object(
    helm: helm_tool.Helm, chart: Path
) -> None:
    docs = helm.template(chart, values=objects.NAMESPACED)
    assert [objects.key(doc) for doc in docs if doc["kind"] in objects.CLUSTER_SCOPED_KINDS] == []
    assert all(doc["metadata"].get("namespace") for doc in docs), "every object names its namespace"
    roles = [
        doc for doc in objects.of_kind(docs, "Role") if doc["metadata"]["namespace"] != "toolhive-system"
    ]
    assert sorted(objects.key(doc) for doc in roles) == [
        ("Role", "shared", "toolhive-operator-toolhive-system"),
        ("Role", "team-a", "toolhive-operator-toolhive-system"),
    ]
    for namespace in ("shared", "team-a"):
        binding = next(
            doc for doc in objects.of_kind(docs, "RoleBinding") if doc["metadata"]["namespace"] == namespace
        )
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "toolhive-operator-toolhive-system",
        }
    env = operator_env(docs)
    assert env["TOOLHIVE_RBAC__SCOPE"] == "namespace"
    assert env["WATCH_NAMESPACE"] == "team-a,shared"


def resolved(env: dict[str, Any]) -> dict[str, str]:
    """The container env as the process sees it (Downward API filled in, $(VAR) references expanded)."""
    plain = {"POD_NAME": "toolhive-operator-abc12", "POD_NAMESPACE": "toolhive-system"}
    for name, value in env.items():
        if isinstance(value, str):
            expanded = value
            for ref, replacement in plain.items():
                expanded = expanded.replace(f"$({ref})", replacement)
            plain[name] = expanded
    return plain


@pytest.mark.parametrize(
    "mode", sorted(objects.MODES), ids=lambda mode: f"{mode} mode env loads into Settings"
)
def test_rendered_environment_is_what_the_settings_model_reads(
    helm: helm_tool.Helm, chart: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = helm.template(chart, values=objects.MODES[mode])
    groups = settings.Settings.model_fields
    for deployment in objects.of_kind(docs, "Deployment"):
        env = resolved(objects.env(deployment))
        for name in env:
            if name.startswith("TOOLHIVE_"):
                group, _, field = name.removeprefix("TOOLHIVE_").lower().partition("__")
                assert group in groups, f"{name}: no settings group {group!r}"
                model = groups[group].annotation
                assert isinstance(model, type) and field in model.model_fields, f"{name}: no field {field!r}"
        for name in list(os.environ):
            if name.startswith(("TOOLHIVE_", "WATCH_NAMESPACE", "POD_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        loaded = settings.Settings()
        assert loaded.pod_namespace == "toolhive-system"
        assert loaded.pod_name == "toolhive-operator-abc12"
        expected_scope = "cluster" if mode == "cluster" else "namespace"
        assert loaded.rbac.scope == expected_scope
        assert loaded.discovery.enabled is (mode == "discovery")
        expected_static = {"static": ("staging", "production"), "namespaced": ("team-a", "shared")}
        assert loaded.rbac.watch_namespaces == expected_static.get(mode, ())
        assert loaded.observability.health_port == 8081
        assert loaded.leader_election.enabled is True

"""The install helper's pure parts: apply order, which hooks run, the chart's env, settings from env."""

from __future__ import annotations

from typing import Any

import pytest

from toolhive import settings
from toolhive.testing import install


def doc(kind: str, name: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, **metadata}}


def deployment(env: list[dict[str, Any]]) -> dict[str, Any]:
    body = doc("Deployment", "toolhive-operator")
    body["spec"] = {"template": {"spec": {"containers": [{"name": "operator", "env": env}]}}}
    return body


def test_documents_are_applied_definitions_and_identities_first_in_a_stable_order() -> None:
    documents = [
        doc("Deployment", "op"),
        doc("RoleBinding", "rb"),
        doc("CustomResourceDefinition", "crd"),
        doc("ServiceAccount", "sa-1"),
        doc("ClusterRole", "cr"),
        doc("ServiceAccount", "sa-2"),
    ]
    kinds = [(d["kind"], d["metadata"]["name"]) for d in install.sort_documents(documents)]
    assert kinds == [
        ("CustomResourceDefinition", "crd"),
        ("ServiceAccount", "sa-1"),
        ("ServiceAccount", "sa-2"),
        ("ClusterRole", "cr"),
        ("RoleBinding", "rb"),
        ("Deployment", "op"),
    ]


@pytest.mark.parametrize(
    ("hooks", "runs"),
    [
        (None, True),
        ("pre-install", True),
        ("post-install,post-upgrade", True),
        ("pre-delete", False),
        ("test", False),
    ],
    ids=["not a hook", "pre-install hook", "post-install among others", "uninstall hook", "test hook"],
)
def test_only_install_hooks_run_at_install(hooks: str | None, runs: bool) -> None:
    annotations = {"helm.sh/hook": hooks} if hooks else {}
    assert install.runs_at_install(doc("Job", "j", annotations=annotations)) is runs


def test_the_container_env_resolves_the_downward_api_and_variable_references() -> None:
    env = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "OTEL_RESOURCE_ATTRIBUTES",
            "value": "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)",
        },
        {"name": "TOOLHIVE_RBAC__SCOPE", "value": "namespace"},
    ]
    resolved = install.container_env([deployment(env)], "toolhive-operator", namespace="ns", pod_name="pod-1")
    assert resolved == {
        "POD_NAMESPACE": "ns",
        "POD_NAME": "pod-1",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=ns,k8s.pod.name=pod-1",
        "TOOLHIVE_RBAC__SCOPE": "namespace",
    }


def test_an_env_value_from_a_secret_is_refused_naming_the_variable() -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    with pytest.raises(ValueError, match="env TOKEN"):
        install.container_env([deployment(env)], "toolhive-operator", namespace="ns", pod_name="p")


def test_a_missing_deployment_is_named() -> None:
    with pytest.raises(LookupError, match="no Deployment 'absent'"):
        install.container_env([], "absent", namespace="ns", pod_name="p")


def test_settings_built_from_the_chart_env_match_what_the_process_would_read() -> None:
    env = {
        "POD_NAMESPACE": "toolhive-system",
        "TOOLHIVE_RBAC__SCOPE": "namespace",
        "TOOLHIVE_DISCOVERY__ENABLED": "true",
        "TOOLHIVE_DISCOVERY__RELEASE_GRACE_SECONDS": "10",
        "TOOLHIVE_OBSERVABILITY__METRICS_PORT": "8080",
        "OTEL_SERVICE_NAME": "ignored",
    }
    kwargs = install.settings_from_env(env, observability={"metrics_port": 0, "health_port": 0})
    config = settings.Settings(**kwargs)
    assert config.rbac.scope is settings.Scope.NAMESPACE
    assert config.discovery.enabled is True
    assert config.discovery.release_grace_seconds == 10.0
    assert config.observability.metrics_port == 0 and config.observability.health_port == 0
    assert config.pod_namespace == "toolhive-system"

"""Small readers over rendered manifests, shared by the chart tests. Pure: no helm, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Manifest = dict[str, Any]

# Kinds that exist outside any namespace (the ones a chart like this could render).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "Namespace",
        "NamespaceDiscovery",
        "PriorityClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
    }
)

# Values for each mode, as a user would write them.
CLUSTER: dict[str, Any] = {}
STATIC: dict[str, Any] = {
    "operator": {"rbac": {"scope": "namespace", "allowedNamespaces": ["staging", "production"]}}
}
DISCOVERY: dict[str, Any] = {
    "operator": {
        "rbac": {
            "scope": "namespace",
            "allowedNamespaces": ["staging", "production"],
            "discovery": {"enabled": True},
        }
    }
}
NAMESPACED: dict[str, Any] = {
    "operator": {
        "rbac": {"scope": "namespace", "allowedNamespaces": ["team-a", "shared"], "namespaced": True}
    }
}
MODES = {"cluster": CLUSTER, "static": STATIC, "discovery": DISCOVERY, "namespaced": NAMESPACED}


def of_kind(docs: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: Iterable[Manifest], kind: str, name: str) -> Manifest:
    """The one object of `kind` called `name`; fails the test with what exists otherwise."""
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {[key(doc) for doc in of_kind(docs, kind)]}"
    return matches[0]


def key(doc: Manifest) -> tuple[str, str, str]:
    """(kind, namespace, name): what must be unique in a cluster."""
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(deployment: Manifest) -> dict[str, Any]:
    """Container env by name: plain values as strings, Downward API/secret sources as their dicts."""
    entries = container(deployment)["env"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in entries}


def triples(rules: Iterable[Manifest]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a list of rules grants, for exact comparisons."""
    found = set()
    for rule in rules:
        assert "resourceNames" not in rule, f"unexpected resourceNames in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    found.add((group, resource, verb))
    return found


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of values (override wins), so a test adds one key to a mode's values."""
    result = dict(base)
    for name, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merged(result[name], value)
        else:
            result[name] = value
    return result

"""RBAC rules as data: the operator's ClusterRole table and the check that a Role is covered by it.

Pure: no I/O. `OPERATOR_CLUSTER_ROLE_RULES` is the single source for `toolhive-operator-manager-role`:
the chart tests compare the rendered ClusterRole against it, and the builder tests check that every
proxy-runner Role the operator creates is a subset of it (Kubernetes refuses to let the operator create
a Role granting anything it does not hold itself: the RBAC escalation check). The discovery process's
rules live here too (`DISCOVERY_CLUSTER_ROLE_RULES`, `discovery_cluster_role_rules`, `DISCOVERY_LEASE_RULES`),
the single source for its integration tests and the chart tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

CRUD = ("create", "delete", "get", "list", "patch", "update", "watch")
READ = ("get", "list", "watch")


@dataclasses.dataclass(frozen=True)
class PolicyRule:
    """One `rules[]` entry of a Role or ClusterRole; tuples so rules are hashable and comparable."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_manifest(self) -> dict[str, Any]:
        """The JSON form, each list sorted so equal rules always serialise identically."""
        return {
            "apiGroups": sorted(self.api_groups),
            "resources": sorted(self.resources),
            "verbs": sorted(self.verbs),
        }

    def grants(self) -> Iterator[tuple[str, str, str]]:
        """Every (apiGroup, resource, verb) triple this rule allows."""
        for group in self.api_groups:
            for resource in self.resources:
                for verb in self.verbs:
                    yield group, resource, verb


OPERATOR_CLUSTER_ROLE_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(("",), ("configmaps", "serviceaccounts", "services"), CRUD),
    # pods, pods/log, pods/attach, statefulsets, services and configmaps are here because the
    # proxy-runner Role the operator creates must be a subset of what the operator holds.
    PolicyRule(("",), ("pods",), READ),
    PolicyRule(("",), ("pods/log",), ("get",)),
    PolicyRule(("",), ("pods/attach",), ("create", "get")),
    PolicyRule(("",), ("events",), ("create",)),  # core/v1 Events on MCPServers, created, never patched
    PolicyRule(("apps",), ("deployments", "statefulsets"), CRUD),
    PolicyRule(("rbac.authorization.k8s.io",), ("rolebindings", "roles"), CRUD),
    PolicyRule(("toolhive.stacklok.dev",), ("mcpservers",), ("get", "list", "patch", "update", "watch")),
    PolicyRule(("toolhive.stacklok.dev",), ("mcpservers/status",), ("get", "patch", "update")),
    PolicyRule(("toolhive.stacklok.dev",), ("mcpservers/finalizers",), ("update",)),
)


# `toolhive-operator discovery` (ServiceAccount toolhive-discovery): see `discovery_cluster_role_rules`.
DISCOVERY_CLUSTER_ROLE_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(("",), ("namespaces",), READ),
    PolicyRule(("rbac.authorization.k8s.io",), ("rolebindings",), CRUD),
    PolicyRule(("toolhive.stacklok.dev",), ("namespacediscoveries",), READ),
    # Exactly the calls discovery makes: status merge patches, core/v1 Events it creates (never patches).
    PolicyRule(("toolhive.stacklok.dev",), ("namespacediscoveries/status",), ("patch",)),
    PolicyRule(("",), ("events",), ("create",)),
)
# The one rule with resourceNames: discovery may bind exactly the operator's ClusterRole, nothing else
# (Kubernetes' bind check), so it can never grant more than the operator's own role.
DISCOVERY_BIND_VERB = "bind"
# Leader election: a namespaced Role in the release namespace, never cluster-wide.
DISCOVERY_LEASE_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(("coordination.k8s.io",), ("leases",), ("create", "get", "list", "patch", "update", "watch")),
)


def discovery_cluster_role_rules(operator_cluster_role: str) -> list[dict[str, Any]]:
    """The discovery ClusterRole's `rules` (JSON form): the table above plus `bind` on one ClusterRole."""
    rules = [rule.as_manifest() for rule in DISCOVERY_CLUSTER_ROLE_RULES]
    rules.append(
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": [DISCOVERY_BIND_VERB],
            "resourceNames": [operator_cluster_role],
        }
    )
    return rules


def uncovered(rules: Iterable[PolicyRule], *, by: Iterable[PolicyRule]) -> list[tuple[str, str, str]]:
    """The (apiGroup, resource, verb) triples of `rules` that `by` does not grant, sorted.

    An empty result means a Role with `rules` can be created by a subject holding `by`. Wildcards
    (`*`) in `by` grant everything in their position, as in Kubernetes.
    """
    held = list(by)
    missing: set[tuple[str, str, str]] = set()
    for rule in rules:
        for group, resource, verb in rule.grants():
            if not any(_allows(h, group, resource, verb) for h in held):
                missing.add((group, resource, verb))
    return sorted(missing)


def _allows(rule: PolicyRule, group: str, resource: str, verb: str) -> bool:
    return (
        (group in rule.api_groups or "*" in rule.api_groups)
        and (resource in rule.resources or "*" in rule.resources)
        and (verb in rule.verbs or "*" in rule.verbs)
    )

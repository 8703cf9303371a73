"""How discovery is wired: its front door, its RBAC rules as data, and the CLI's config from settings."""

from __future__ import annotations

import pytest

import discovery
from toolhive import cli, rbac_rules, settings


def test_the_front_door_lists_every_public_name_sorted() -> None:
    public = {name for name in vars(discovery) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(discovery, name)).__name__ == "module"}
    assert discovery.__all__ == sorted(discovery.__all__)
    assert set(discovery.__all__) == public - modules
    assert {"Config", "discovery_resource", "run"} <= set(discovery.__all__)


def test_discovery_may_bind_only_the_operator_cluster_role() -> None:
    rules = rbac_rules.discovery_cluster_role_rules("toolhive-operator-manager-role")
    binds = [rule for rule in rules if "bind" in rule["verbs"]]
    assert binds == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["toolhive-operator-manager-role"],
        }
    ]
    assert all("resourceNames" not in rule for rule in rules if rule not in binds)


@pytest.mark.parametrize(
    ("group", "resource", "verb", "allowed"),
    [
        pytest.param("", "namespaces", "watch", True, id="namespaces are watched"),
        pytest.param("", "namespaces", "update", False, id="namespaces are never written"),
        pytest.param(
            "rbac.authorization.k8s.io", "rolebindings", "delete", True, id="rolebindings are managed"
        ),
        pytest.param("rbac.authorization.k8s.io", "roles", "create", False, id="roles are never created"),
        pytest.param(
            "rbac.authorization.k8s.io", "clusterrolebindings", "create", False, id="no cluster grants"
        ),
        pytest.param(
            "toolhive.stacklok.dev", "namespacediscoveries", "update", False, id="spec is read-only"
        ),
        pytest.param(
            "toolhive.stacklok.dev", "namespacediscoveries/status", "patch", True, id="status is written"
        ),
        pytest.param("", "events", "create", True, id="core events are posted"),
        pytest.param("events.k8s.io", "events", "create", False, id="events.k8s.io is not used"),
        pytest.param("", "secrets", "get", False, id="no secrets"),
        pytest.param("coordination.k8s.io", "leases", "update", False, id="leases are not cluster-wide"),
    ],
)
def test_discovery_cluster_role_grants_exactly_its_table(
    group: str, resource: str, verb: str, allowed: bool
) -> None:
    missing = rbac_rules.uncovered(
        [rbac_rules.PolicyRule((group,), (resource,), (verb,))], by=rbac_rules.DISCOVERY_CLUSTER_ROLE_RULES
    )
    assert (not missing) is allowed


def test_cli_config_binds_the_operator_in_the_release_namespace_by_default() -> None:
    config = cli.discovery_config(settings.Settings(pod_namespace="tools", pod_name="discovery-0"))
    assert config.subject_namespace == "tools"
    assert config.instance == "discovery-0"
    assert config.resource.plural == "namespacediscoveries"
    assert config.resource.group == "toolhive.stacklok.dev"
    assert not config.resource.namespaced
    assert config.template.role_ref["name"] == "toolhive-operator-manager-role"


def test_cli_config_honours_an_explicit_subject_namespace() -> None:
    config = cli.discovery_config(
        settings.Settings(
            pod_namespace="tools",
            discovery=settings.DiscoverySettings(subject_namespace="elsewhere", release_grace_seconds=5),
        )
    )
    assert config.subject_namespace == "elsewhere"
    assert config.grace_seconds == 5


def test_the_cli_has_a_discovery_command() -> None:
    args = cli.build_parser().parse_args(["discovery"])
    assert args.func.__name__ == "_discovery"

"""Static list always applies, deny list always wins, an invalid selector selects nothing (and says so)."""

from __future__ import annotations

from discovery import constants
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory

selector = discovery_harness.selector


def test_a_static_namespace_is_granted_without_any_label(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    static = namespaces.create("static")
    found = start_discovery({"selectors": [selector(label_key)], "namespaces": [static]})
    found.wait_converged({static}, within={static})
    assert found.events(involved=static, reason="Granted")[0]["message"].startswith("RoleBinding")


def test_a_static_namespace_is_granted_once_it_is_created(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces
) -> None:
    static = discovery_harness.cluster_mod.unique_name("later")
    found = start_discovery({"namespaces": [static]})
    found.wait_converged(set(), within={static})
    namespaces.admin.core.create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": static}}
    )
    namespaces.created.append(static)
    found.wait_converged({static}, within={static})


def test_the_deny_list_beats_a_label_and_the_static_list(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    denied = namespaces.create("denied", **{label_key: "on"})
    allowed = namespaces.create("allowed", **{label_key: "on"})
    spec = {"selectors": [selector(label_key)], "namespaces": [denied], "denyNamespaces": [denied]}
    found = start_discovery(spec)
    found.wait_converged({allowed}, within={denied, allowed})


def test_denying_a_member_revokes_its_grant(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged({team}, within={team})
    found.set_spec({"selectors": [selector(label_key)], "denyNamespaces": [team]})
    found.wait_converged(set(), within={team})


def test_an_invalid_selector_selects_nothing_and_says_why(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    labelled = namespaces.create("team", **{label_key: "on"})
    static = namespaces.create("static")
    bad = {"matchExpressions": [{"key": label_key, "operator": "Equals", "values": ["on"]}]}
    found = start_discovery({"selectors": [bad], "namespaces": [static]})
    found.wait_converged({static}, within={labelled, static})
    condition = found.condition("SelectorsValid")
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSelector"
    assert "operator" in condition["message"]
    events = discovery_harness.cluster_mod.poll(
        lambda: found.events(involved=found.name, reason="InvalidSelector"), message="InvalidSelector event"
    )
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["kind"] == "NamespaceDiscovery"


def test_an_empty_selector_is_refused_rather_than_selecting_everything(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces
) -> None:
    bystander = namespaces.create("bystander")
    found = start_discovery({"selectors": [{}]})
    discovery_harness.cluster_mod.poll(
        lambda: found.condition("SelectorsValid").get("status") == "False", message="SelectorsValid False"
    )
    found.wait_converged(set(), within={bystander})


def test_bindings_of_another_owner_or_unlabelled_ones_are_never_touched(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    selected = namespaces.create("sel", **{label_key: "on"})
    unselected = namespaces.create("unsel")
    rbac = namespaces.admin.rbac
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    foreign_labels = {
        constants.MANAGED_BY_LABEL: constants.MANAGED_BY_VALUE,
        constants.OWNER_LABEL: "someone-else",
    }
    planted = {
        # Our name in a namespace we select, owned by another discovery: a conflict, left alone.
        (selected, "toolhive-operator"): foreign_labels,
        # Managed-looking, another owner, in a namespace we do not select: not ours to revoke.
        (unselected, "toolhive-operator"): foreign_labels,
        # No labels at all, in a member namespace, another name: invisible to us.
        (selected, "hand-made"): {},
    }
    for (namespace, name), labels in planted.items():
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "labels": labels},
                "roleRef": role_ref,
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
            },
        )
    versions = {
        key: rbac.read_namespaced_role_binding(key[1], key[0]).metadata.resource_version for key in planted
    }
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    discovery_harness.cluster_mod.poll(
        lambda: found.status().get("pending") == [selected],
        message="selected namespace pending on a conflict",
    )
    assert found.condition("Ready")["reason"] == "GrantConflict"
    discovery_harness.cluster_mod.poll(
        lambda: found.events(involved=selected, reason="GrantConflict"), message="GrantConflict event"
    )
    for (namespace, name), version in versions.items():
        current = rbac.read_namespaced_role_binding(name, namespace)
        assert current.metadata.resource_version == version, f"{namespace}/{name} was modified"
        assert current.metadata.deletion_timestamp is None
    # Once the foreign binding is gone, discovery grants there.
    rbac.delete_namespaced_role_binding("toolhive-operator", selected)
    found.wait_converged({selected}, within={selected, unselected})

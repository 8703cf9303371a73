"""Journey 1: labelling a namespace onboards it; removing or changing the label revokes it."""

from __future__ import annotations

from discovery import constants
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory

selector = discovery_harness.selector


def test_labelling_a_namespace_grants_the_operator_there(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team")
    other = namespaces.create("other")
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged(set(), within={team, other})
    namespaces.label(team, **{label_key: "on"})
    found.wait_converged({team}, within={team, other})
    binding = found.managed()[team]
    assert binding["roleRef"]["name"] == found.config.cluster_role
    assert binding["subjects"][0]["name"] == found.config.subject_name
    assert binding["subjects"][0]["namespace"] == found.config.subject_namespace
    assert constants.GRANT_FINALIZER in binding["metadata"]["finalizers"]
    assert found.status()["memberCount"] == 1
    assert found.events(involved=team, reason="Granted")


def test_removing_the_label_revokes_the_grant_after_the_grace_period(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged({team}, within={team})
    namespaces.label(team, **{label_key: None})
    found.wait_converged(set(), within={team})
    assert found.events(involved=team, reason="Revoked")


def test_changing_the_label_value_unselects_the_namespace(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged({team}, within={team})
    namespaces.label(team, **{label_key: "off"})
    found.wait_converged(set(), within={team})
    namespaces.label(team, **{label_key: "on"})
    found.wait_converged({team}, within={team})


def test_a_namespace_created_already_labelled_is_granted(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    found = start_discovery({"selectors": [selector(label_key)]})
    team = namespaces.create("team", **{label_key: "on"})
    found.wait_converged({team}, within={team})


def test_two_selectors_are_ored(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    by_label = namespaces.create("a", **{label_key: "on"})
    by_expression = namespaces.create("b", **{f"{label_key}-tier": "gold"})
    neither = namespaces.create("c", **{f"{label_key}-tier": "bronze"})
    spec = {
        "selectors": [
            selector(label_key),
            {
                "matchExpressions": [
                    {"key": f"{label_key}-tier", "operator": "In", "values": ["gold", "silver"]}
                ]
            },
        ]
    }
    found = start_discovery(spec)
    found.wait_converged({by_label, by_expression}, within={by_label, by_expression, neither})


def test_editing_the_discovery_object_takes_effect_without_a_restart(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "blue"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged(set(), within={team})
    found.set_spec({"selectors": [selector(label_key, "blue")]})
    found.wait_converged({team}, within={team})
    assert found.status()["observedGeneration"] == found.object()["metadata"]["generation"]

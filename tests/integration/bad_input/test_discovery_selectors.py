"""Broken NamespaceDiscovery selectors: each one selects nothing and is named in SelectorsValid=False and a
Warning Event (fail closed); the valid selectors next to them keep working; no write loop follows."""

from __future__ import annotations

import time

import pytest

from tests import cluster as cluster_mod
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory


def broken_selectors(key: str) -> list[tuple[str, object]]:
    """(the path and words SelectorsValid must name, the selector) for selectors[1..]."""
    return [
        (
            "selectors[1].matchExpressions[0].operator: 'Equals' is not one of",
            {"matchExpressions": [{"key": key, "operator": "Equals", "values": ["on"]}]},
        ),
        (
            "selectors[2].matchExpressions[0].values: must be non-empty when operator is In",
            {"matchExpressions": [{"key": key, "operator": "In", "values": []}]},
        ),
        (
            "selectors[3].matchExpressions[0].values: must be empty when operator is Exists",
            {"matchExpressions": [{"key": key, "operator": "Exists", "values": ["on"]}]},
        ),
        (
            "selectors[4].matchExpressions[0].key: invalid label key 'bad key!'",
            {"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]},
        ),
        ("selectors[5].matchLabels[", {"matchLabels": {key: "not valid!"}}),
        ("selectors[6]: empty selector refused", {}),
        (
            "selectors[7].matchExpressions[0].values: must be non-empty when operator is NotIn",
            {"matchExpressions": [{"key": key, "operator": "NotIn"}]},
        ),
    ]


def test_each_broken_selector_is_named_selects_nothing_and_the_valid_one_still_works(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    cluster: cluster_mod.Cluster,
    label_key: str,
) -> None:
    broken_key = label_key + "-broken"
    member = namespaces.create("sv", **{label_key: "on"})
    # Would be selected by selectors[1..4] and [7] if they were read leniently.
    tempting = namespaces.create("st", **{broken_key: "on"})
    broken = broken_selectors(broken_key)
    found = start_discovery(
        {"selectors": [discovery_harness.selector(label_key), *[selector for _, selector in broken]]}
    )
    found.wait_converged({member}, within={member, tempting})

    valid = found.condition("SelectorsValid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSelector")
    for named, _ in broken:
        assert named in valid["message"], f"{named!r} not in {valid['message']!r}"
    assert "selectors[0]" not in valid["message"]
    events = cluster_mod.poll(
        lambda: found.events(involved=found.name, reason="InvalidSelector"),
        timeout=10,
        message="a Warning Event on the NamespaceDiscovery object",
    )
    assert events[0]["type"] == "Warning" and "selectors[1]" in events[0]["message"]
    assert found.status()["members"] == [member]
    assert tempting not in found.granted({member, tempting})

    # Fixing the spec restores the condition and selects what the fixed selector says.
    found.set_spec(
        {
            "selectors": [
                discovery_harness.selector(label_key),
                {"matchExpressions": [{"key": broken_key, "operator": "Exists"}]},
            ]
        }
    )
    found.wait_converged({member, tempting}, within={member, tempting})
    cluster_mod.poll(
        lambda: found.condition("SelectorsValid").get("status") == "True",
        timeout=10,
        message="SelectorsValid back to True",
    )


@pytest.mark.loopback_only("counts discovery's writes with the request log")
def test_a_broken_selector_is_reported_once_not_in_a_loop(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    cluster: cluster_mod.Cluster,
    label_key: str,
) -> None:
    assert cluster.loopback is not None
    member = namespaces.create("so", **{label_key: "on"})
    selectors = [discovery_harness.selector(label_key), *[s for _, s in broken_selectors(label_key + "-b")]]
    found = start_discovery({"selectors": selectors})
    found.wait_converged({member}, within={member})
    cluster_mod.poll(
        lambda: found.events(involved=found.name, reason="InvalidSelector"), timeout=10, message="event"
    )
    cluster.loopback.requests.reset()
    # A quiet window: with nothing changing, an invalid selector costs no write at all.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert cluster.loopback.requests.count(writes=True, user=found.rbac.user) == 0
        time.sleep(0.1)
    assert len(found.events(involved=found.name, reason="InvalidSelector")) == 1

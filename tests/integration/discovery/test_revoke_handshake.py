"""The revoke handshake: draining is published first; the grant goes on the operator's release or after grace.

The operator's side is played with the operator ServiceAccount's own token, as `toolhive/scope.py` does it:
it reads `status.draining`, lets go, then annotates the RoleBinding `released: "true"`.
"""

from __future__ import annotations

from pathlib import Path

from discovery import constants
from tests import cluster as cluster_mod
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory

selector = discovery_harness.selector


def test_the_operator_release_revokes_the_grant_before_the_grace_period(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
    operator_kubeconfig: Path,
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=600)
    found.wait_converged({team}, within={team})
    namespaces.label(team, **{label_key: None})
    cluster_mod.poll(
        lambda: found.status().get("draining") == [team], message="namespace published as draining"
    )
    binding = found.managed()[team]
    assert constants.DRAINING_ANNOTATION in binding["metadata"]["annotations"]
    assert team not in found.status().get("members", [])
    # The grant stays while the operator has not released (the grace period is long).
    assert found.granted({team}) == {team}
    discovery_harness.release(operator_kubeconfig, team)
    found.wait_converged(set(), within={team}, timeout=10)
    assert found.events(involved=team, reason="Draining")
    assert found.events(involved=team, reason="Revoked")


def test_without_a_release_the_grant_is_revoked_after_the_grace_period(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=2)
    found.wait_converged({team}, within={team})
    namespaces.label(team, **{label_key: None})
    cluster_mod.poll(
        lambda: found.status().get("draining") == [team], message="namespace published as draining"
    )
    found.wait_converged(set(), within={team}, timeout=15)
    revoked = found.events(involved=team, reason="Revoked")
    assert "grace period" in revoked[-1]["message"]


def test_relabelling_a_draining_namespace_keeps_its_grant(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=600)
    found.wait_converged({team}, within={team})
    uid = found.managed()[team]["metadata"]["uid"]
    namespaces.label(team, **{label_key: None})
    cluster_mod.poll(
        lambda: found.status().get("draining") == [team], message="namespace published as draining"
    )
    namespaces.label(team, **{label_key: "on"})
    found.wait_converged({team}, within={team})
    restored = found.managed()[team]
    assert restored["metadata"]["uid"] == uid
    assert constants.DRAINING_ANNOTATION not in (restored["metadata"].get("annotations") or {})


def test_a_release_annotation_on_a_member_is_cleared_not_obeyed(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
    operator_kubeconfig: Path,
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]})
    found.wait_converged({team}, within={team})
    discovery_harness.release(operator_kubeconfig, team)
    cluster_mod.poll(
        lambda: (
            constants.RELEASED_ANNOTATION not in (found.managed()[team]["metadata"].get("annotations") or {})
        ),
        message="stray released annotation cleared",
    )
    found.wait_converged({team}, within={team})

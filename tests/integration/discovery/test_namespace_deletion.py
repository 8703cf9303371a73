"""Deleting a member namespace: the grant outlives the namespace's content, then the namespace finishes.

The grant's finalizer keeps the operator's RoleBinding while the namespace terminates (kubernetes#115070:
otherwise the operator loses access before it can drop its own finalizers, and the namespace hangs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from discovery import constants
from tests import cluster as cluster_mod
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory

selector = discovery_harness.selector


def test_a_deleted_member_keeps_its_grant_until_released_then_disappears(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
    operator_kubeconfig: Path,
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=600)
    found.wait_converged({team}, within={team})
    namespaces.delete(team)
    cluster_mod.poll(lambda: found.status().get("draining") == [team], message="terminating member drains")
    # The namespace is still there, held by the grant, and the operator can still act through it.
    assert namespaces.exists(team)
    assert team in found.managed()
    discovery_harness.release(operator_kubeconfig, team)
    cluster_mod.poll(lambda: not namespaces.exists(team), timeout=60, message="namespace finished deleting")
    cluster_mod.poll(lambda: team not in found.managed(), message="grant gone")
    cluster_mod.poll(lambda: team not in found.status().get("draining", []), message="no longer draining")


def test_a_deleted_member_finishes_deleting_after_the_grace_period_without_a_release(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=2)
    found.wait_converged({team}, within={team})
    namespaces.delete(team)
    cluster_mod.poll(lambda: not namespaces.exists(team), timeout=60, message="namespace finished deleting")
    assert team not in found.managed()


def test_a_terminating_namespace_is_never_granted(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    core = namespaces.admin.core
    # Something else's finalizer keeps the namespace Terminating while discovery looks at it.
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
    }
    core.create_namespaced_config_map(team, held)
    namespaces.delete(team)
    cluster_mod.poll(
        lambda: core.read_namespace(team).status.phase == "Terminating", message="namespace terminating"
    )
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    cluster_mod.poll(lambda: "members" in found.status(), message="first status published")
    assert team not in found.managed()
    assert team not in found.status()["members"] + found.status()["pending"]
    core.patch_namespaced_config_map("held", team, {"metadata": {"finalizers": None}})
    cluster_mod.poll(lambda: not namespaces.exists(team), timeout=60, message="namespace finished deleting")


def test_the_grace_period_does_not_revoke_while_others_finalizers_hold_the_namespace(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged({team}, within={team})
    core = namespaces.admin.core
    # Stands for an object still carrying the operator's finalizer while the operator is down.
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
    }
    core.create_namespaced_config_map(team, held)
    namespaces.delete(team)
    cluster_mod.poll(lambda: found.status().get("draining") == [team], message="terminating member drains")
    since = found.managed()[team]["metadata"]["annotations"][constants.DRAINING_ANNOTATION]
    deadline = datetime.fromisoformat(since.replace("Z", "+00:00")) + timedelta(seconds=3)
    cluster_mod.poll(lambda: datetime.now(UTC) > deadline, message="grace period (1 s) long over")
    assert team in found.managed(), "grant revoked while others' finalizers remain"
    assert namespaces.exists(team)
    core.patch_namespaced_config_map("held", team, {"metadata": {"finalizers": None}})
    cluster_mod.poll(lambda: not namespaces.exists(team), timeout=60, message="namespace finished deleting")

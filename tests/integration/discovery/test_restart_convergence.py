"""Startup and crashes: a restarted discovery converges on the whole picture, and drift is repaired."""

from __future__ import annotations

import pytest

from discovery import constants
from tests import cluster as cluster_mod
from tests.integration import discovery_harness
from tests.integration.discovery.conftest import DiscoveryFactory
from toolhive.testing import LoopbackApi

selector = discovery_harness.selector


def test_a_restart_creates_missing_grants_and_revokes_stale_ones(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    kept = namespaces.create("kept", **{label_key: "on"})
    left = namespaces.create("left", **{label_key: "on"})
    joined = namespaces.create("joined")
    within = {kept, left, joined}
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
    found.wait_converged({kept, left}, within=within)
    kept_uid = found.managed()[kept]["metadata"]["uid"]
    found.stop()
    # While discovery is down: one namespace leaves, one joins, one grant is deleted by hand.
    namespaces.label(left, **{label_key: None})
    namespaces.label(joined, **{label_key: "on"})
    found.start()
    found.wait_converged({kept, joined}, within=within)
    assert found.managed()[kept]["metadata"]["uid"] == kept_uid, "an intact grant is kept, not recreated"


def test_a_restart_in_the_middle_of_draining_finishes_the_revoke(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=2)
    found.wait_converged({team}, within={team})
    namespaces.label(team, **{label_key: None})
    cluster_mod.poll(lambda: found.status().get("draining") == [team], message="draining published")
    found.restart()
    found.wait_converged(set(), within={team}, timeout=15)


def test_a_deleted_grant_is_recreated(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]})
    found.wait_converged({team}, within={team})
    rbac = namespaces.admin.rbac
    rbac.patch_namespaced_role_binding("toolhive-operator", team, {"metadata": {"finalizers": None}})
    rbac.delete_namespaced_role_binding("toolhive-operator", team)
    cluster_mod.poll(
        lambda: found.granted({team}) == {team} and found.managed()[team]["metadata"]["finalizers"],
        message="grant recreated",
    )


def test_an_edited_grant_is_repaired(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]})
    found.wait_converged({team}, within={team})
    rbac = namespaces.admin.rbac
    intruder = [{"kind": "ServiceAccount", "name": "intruder", "namespace": team}]
    rbac.patch_namespaced_role_binding("toolhive-operator", team, {"subjects": intruder})

    def repaired() -> bool:
        subjects = found.managed()[team]["subjects"]
        return [s["name"] for s in subjects] == [found.config.subject_name]

    cluster_mod.poll(repaired, message="subjects repaired")
    found.wait_converged({team}, within={team})


@pytest.mark.loopback_only("injects API faults on the discovery's writes and drops its watches")
def test_failed_writes_and_dropped_watches_still_converge(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
    loopback: LoopbackApi,
    discovery_rbac: discovery_harness.DiscoveryRbac,
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    user = discovery_rbac.user
    loopback.faults.add(status=409, verb="create", path="/rolebindings", count=2, user=user)
    loopback.faults.add(status=500, verb="patch", path="/status", count=3, user=user)
    try:
        found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=1)
        found.wait_converged({team}, within={team})
        assert loopback.faults.drop_watches(path="/namespaces") >= 1
        namespaces.label(team, **{label_key: None})
        found.wait_converged(set(), within={team})
    finally:
        loopback.faults.clear()


@pytest.mark.loopback_only("counts the discovery's writes in the request log")
def test_a_converged_discovery_makes_no_writes(
    start_discovery: DiscoveryFactory,
    namespaces: discovery_harness.Namespaces,
    label_key: str,
    loopback: LoopbackApi,
    discovery_rbac: discovery_harness.DiscoveryRbac,
) -> None:
    team = namespaces.create("team", **{label_key: "on"})
    found = start_discovery({"selectors": [selector(label_key)]})
    found.wait_converged({team}, within={team})
    before = loopback.requests.writes(user=discovery_rbac.user)
    # Unrelated churn wakes discovery up; it must not write anything in response.
    for _ in range(3):
        namespaces.create("churn")
    unrelated = namespaces.create("quiet")
    namespaces.label(unrelated, **{"unrelated.example.com/x": "y"})
    cluster_mod.poll(lambda: namespaces.exists(unrelated), message="churn applied")
    found.restart()
    found.wait_converged({team}, within={team})
    assert loopback.requests.writes(user=discovery_rbac.user) == before


def test_a_grant_pointing_at_another_cluster_role_is_replaced_or_revoked_at_once(
    start_discovery: DiscoveryFactory, namespaces: discovery_harness.Namespaces, label_key: str
) -> None:
    member = namespaces.create("member", **{label_key: "on"})
    leaver = namespaces.create("leaver")
    found = start_discovery({"selectors": [selector(label_key)]}, grace_seconds=600)
    found.stop()
    # While discovery is down, someone with bind rights swaps the role under our labels and finalizer
    # (roleRef is immutable, so that means delete and recreate).
    for namespace in (member, leaver):
        namespaces.admin.rbac.create_namespaced_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": found.config.rolebinding_name,
                    "labels": found.config.template.labels,
                    "finalizers": [constants.GRANT_FINALIZER],
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": found.config.template.subjects,
            },
        )
    found.start()
    # The member gets our role back (recreated); the leaver's binding never granted our role, so it goes
    # without waiting for a release (the grace period here is long).
    found.wait_converged({member}, within={member, leaver}, timeout=15)
    assert found.managed()[member]["roleRef"]["name"] == found.config.cluster_role

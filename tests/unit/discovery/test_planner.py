"""The incremental planner: told only which namespaces changed, it always plans what `decide_plan` plans over
the whole world. Seeded random histories of a 25-namespace cluster (labels, deletions, finalizers, grants in
every state, foreign bindings, spec edits, time passing, writes that succeed or fail) check it step by step.
"""

from __future__ import annotations

import copy
import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from discovery import bindings, constants, membership, models, policy

TEMPLATE = bindings.GrantTemplate(
    name="grantee",
    cluster_role="grantee-manager-role",
    subject_name="grantee",
    subject_namespace="grantee-system",
    owner="default",
)
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
GRACE = timedelta(seconds=30)
NAMES = [f"ns-{i}" for i in range(24)] + ["kube-system"]
SPECS: list[dict[str, Any]] = [
    {"selectors": [{"matchLabels": {"team": "yes"}}]},
    {"selectors": [{"matchLabels": {"team": "yes"}}], "namespaces": ["ns-1", "ns-30"]},
    {
        "selectors": [
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
            {"matchLabels": {"team": "no"}},
        ]
    },
    {"selectors": [{"matchLabels": {"team": "yes"}}], "denyNamespaces": ["ns-2", "ns-3"]},
    {"selectors": [{}, {"matchExpressions": [{"key": "team", "operator": "In"}]}], "namespaces": ["ns-4"]},
]
LABELS: list[dict[str, str]] = [{}, {"team": "yes"}, {"team": "no"}, {"team": "yes", "env": "dev"}]
OTHER_ROLE = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
OTHER_SUBJECT = [{"kind": "ServiceAccount", "name": "intruder", "namespace": "x"}]


class Cluster:
    """Namespaces and RoleBindings as plain manifests; every change records the namespace it touched."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = START
        self.spec = SPECS[0]
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.rolebindings: dict[tuple[str, str], dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self._versions = itertools.count(1)

    def store_namespace(self, name: str, body: dict[str, Any] | None) -> None:
        self.dirty.add(name)
        if body is None:
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = body

    def store_binding(self, key: tuple[str, str], body: dict[str, Any] | None) -> None:
        self.dirty.add(key[0])
        if body is None:
            self.rolebindings.pop(key, None)
            return
        body = copy.deepcopy(body)
        metadata = body["metadata"]
        metadata["resourceVersion"] = str(next(self._versions))
        metadata.setdefault("uid", f"uid-{next(self._versions)}")
        self.rolebindings[key] = body

    # -- random changes ---------------------------------------------------------------------------

    def change_something(self) -> None:
        rng = self.rng
        name = rng.choice(NAMES)
        what = rng.randrange(10)
        if what < 3:
            self.store_namespace(name, self._namespace(name))
        elif what == 3:
            self.store_namespace(name, None)
        elif what < 8:
            binding = rng.choice([TEMPLATE.name, TEMPLATE.name, "old-grant"])
            self.store_binding((name, binding), self._binding(name, binding))
        elif what == 8:
            key = (name, rng.choice([TEMPLATE.name, "old-grant"]))
            if key in self.rolebindings:
                self.store_binding(key, None)
        elif rng.random() < 0.3:
            self.spec = rng.choice(SPECS)  # no name is marked: the planner must notice by itself

    def _namespace(self, name: str) -> dict[str, Any]:
        rng = self.rng
        metadata: dict[str, Any] = {"name": name, "labels": dict(rng.choice(LABELS))}
        body: dict[str, Any] = {"metadata": metadata}
        if rng.random() < 0.2:
            metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            finalizers = rng.choice([[], [constants.GRANT_FINALIZER], [constants.GRANT_FINALIZER, "x.io/f"]])
            listed = ", ".join(f"{item} in 1 resource instances" for item in finalizers)
            body["status"] = {
                "phase": "Terminating",
                "conditions": [
                    {
                        "type": "NamespaceFinalizersRemaining",
                        "status": "True" if finalizers else "False",
                        "message": f"Some content in the namespace has finalizers remaining: {listed}",
                    }
                ],
            }
        return body

    def _binding(self, namespace: str, name: str) -> dict[str, Any]:
        rng = self.rng
        body = bindings.build_grant(namespace, template=TEMPLATE)
        body["metadata"]["name"] = name
        metadata = body["metadata"]
        state = rng.randrange(9)
        if state == 1:
            since = self.now - timedelta(seconds=rng.choice([0, 5, 29, 30, 31, 90, -20]))
            metadata["annotations"] = {constants.DRAINING_ANNOTATION: bindings.format_time(since)}
            if rng.random() < 0.4:
                metadata["annotations"][constants.RELEASED_ANNOTATION] = "true"
        elif state == 2:
            body["subjects"] = OTHER_SUBJECT
        elif state == 3:
            body["roleRef"] = OTHER_ROLE
        elif state == 4:
            metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        elif state == 5:
            metadata["finalizers"] = []
        elif state == 6:  # someone else's binding under our name (or any name)
            metadata["labels"] = {"app.kubernetes.io/managed-by": "helm"}
            metadata["finalizers"] = []
        elif state == 7:
            metadata["annotations"] = {constants.RELEASED_ANNOTATION: "true"}
        return body

    def write(self, plan: membership.Plan, *, failing: float = 0.3) -> None:
        """Discovery's writes: each succeeds (and is seen) or fails (nothing changes, nothing is marked)."""
        for action in plan.actions:
            if self.rng.random() < failing:
                continue
            key = (action.namespace, action.name)
            if action.kind is membership.ActionKind.REVOKE:
                self.store_binding(key, None)
            else:
                assert action.body is not None
                self.store_binding(key, action.body)

    # -- planning ---------------------------------------------------------------------------------

    def selection(self) -> policy.SelectorPolicy:
        return policy.SelectorPolicy.from_spec(models.NamespaceDiscoverySpec.model_validate(self.spec))

    def observed(self, names: set[str] | None) -> membership.Observed:
        return membership.Observed.from_manifests(
            namespaces=[body for name, body in self.namespaces.items() if names is None or name in names],
            rolebindings=[
                body for key, body in self.rolebindings.items() if names is None or key[0] in names
            ],
        )

    def full_plan(self) -> membership.Plan:
        return membership.decide_plan(
            self.selection(), self.observed(None), template=TEMPLATE, now=self.now, grace=GRACE
        )

    def incremental_plan(self, planner: membership.Planner) -> membership.Plan:
        """As the controller gathers: the dirty and due names only, unless the selection changed."""
        selection = self.selection()
        names: set[str] | None = None
        if not planner.needs_all(selection):
            names = self.dirty | planner.due(self.now)
        self.dirty = set()
        return planner.plan(selection, self.observed(names), names=names, now=self.now)


@pytest.mark.parametrize("seed", range(12))
def test_the_incremental_plan_equals_the_full_plan_over_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(rng)
    for name in NAMES:
        cluster.store_namespace(name, cluster._namespace(name))
    planner = membership.Planner(template=TEMPLATE, grace=GRACE)
    replanned: list[int] = []
    for step in range(400):
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            cluster.change_something()
        if rng.random() < 0.3:
            cluster.now += timedelta(seconds=rng.choice([1, 10, 29, 30, 31, 120]))
        if rng.random() < 0.02:
            planner = membership.Planner(template=TEMPLATE, grace=GRACE)  # a restart
        plan = cluster.incremental_plan(planner)
        assert plan == cluster.full_plan(), f"seed {seed}, step {step}"
        replanned.append(len(plan.replanned) if plan.replanned is not None else len(NAMES))
        cluster.write(plan)
    # Not vacuous: most plans re-planned a few names, not the whole cluster.
    assert sorted(replanned)[len(replanned) // 2] < len(NAMES) // 3


def test_a_quiet_world_replans_nothing_and_keeps_its_plan() -> None:
    cluster = Cluster(random.Random(0))
    for name in NAMES:
        cluster.store_namespace(name, {"metadata": {"name": name, "labels": {"team": "yes"}}})
    planner = membership.Planner(template=TEMPLATE, grace=GRACE)
    first = cluster.incremental_plan(planner)
    assert first.replanned is None  # the first plan covers everything
    cluster.write(first, failing=0)
    confirmed = cluster.incremental_plan(planner)
    assert confirmed.actions == () and len(confirmed.membership.members) == len(NAMES) - 1  # not kube-system
    quiet = cluster.incremental_plan(planner)
    assert quiet.replanned == frozenset()
    assert quiet == confirmed == cluster.full_plan()


def test_a_partial_plan_is_refused_when_the_selection_changed_or_a_due_name_is_missing() -> None:
    cluster = Cluster(random.Random(0))
    cluster.store_namespace("ns-0", {"metadata": {"name": "ns-0", "labels": {"team": "yes"}}})
    planner = membership.Planner(template=TEMPLATE, grace=GRACE)
    with pytest.raises(ValueError, match="selection changed"):
        planner.plan(cluster.selection(), cluster.observed(None), names=set(), now=START)
    plan = planner.plan(cluster.selection(), cluster.observed(None), names=None, now=START)
    assert [action.kind for action in plan.actions] == [membership.ActionKind.CREATE]
    with pytest.raises(ValueError, match="due namespaces not re-planned: \\['ns-0'\\]"):
        planner.plan(cluster.selection(), cluster.observed(set()), names=set(), now=START)

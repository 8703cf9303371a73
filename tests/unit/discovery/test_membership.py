"""Membership lifecycle: each transition of absent -> pending -> member -> draining -> absent, the published
status, and a simulated world where applying plans converges without touching anyone else's bindings.
"""

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from discovery import bindings, constants, membership, models, policy
from discovery.membership import ActionKind, Phase
from discovery.policy import NamespaceInfo

TEMPLATE = bindings.GrantTemplate(
    name="grantee",
    cluster_role="grantee-manager-role",
    subject_name="grantee",
    subject_namespace="grantee-system",
    owner="default",
)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
GRACE = timedelta(seconds=30)
SELECT_TEAM = {"selectors": [{"matchLabels": {"team": "yes"}}]}


def make_policy(**spec: Any) -> policy.SelectorPolicy:
    return policy.SelectorPolicy.from_spec(models.NamespaceDiscoverySpec.model_validate(spec or SELECT_TEAM))


def grant(
    namespace: str = "team-a", *, annotations: dict[str, str] | None = None, **changes: Any
) -> dict[str, Any]:
    """A grant as the API would return it."""
    body = bindings.build_grant(namespace, template=TEMPLATE)
    body["metadata"].update(uid=f"uid-{namespace}", resourceVersion="1")
    if annotations:
        body["metadata"]["annotations"] = annotations
    body.update(changes)
    return body


def draining(since: datetime, *, released: bool = False) -> dict[str, str]:
    marks = {constants.DRAINING_ANNOTATION: bindings.format_time(since)}
    if released:
        marks[constants.RELEASED_ANNOTATION] = "true"
    return marks


def plan_for(
    rolebindings: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    terminating: bool = False,
    selection: policy.SelectorPolicy | None = None,
    namespaces: list[NamespaceInfo] | None = None,
) -> membership.Plan:
    if namespaces is None:
        namespaces = [
            NamespaceInfo("team-a", {"team": "yes"} if labels is None else labels, terminating=terminating)
        ]
    return membership.decide_plan(
        selection or make_policy(),
        membership.Observed(namespaces=tuple(namespaces), rolebindings=tuple(rolebindings)),
        template=TEMPLATE,
        now=NOW,
        grace=GRACE,
    )


UNSELECTED = {"team": "no"}
SINCE_10S = NOW - timedelta(seconds=10)
SINCE_60S = NOW - timedelta(seconds=60)
OTHER_ROLE = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
OTHER_SUBJECT = [{"kind": "ServiceAccount", "name": "intruder", "namespace": "x"}]
DELETING = {"deletionTimestamp": "2026-01-02T03:00:00Z"}

TRANSITIONS = [
    pytest.param(
        [], {}, [ActionKind.CREATE], Phase.PENDING, id="absent to pending: a selected namespace is granted"
    ),
    pytest.param(
        [grant()], {}, [], Phase.MEMBER, id="pending to member: an observed healthy grant needs no write"
    ),
    pytest.param(
        [grant(subjects=OTHER_SUBJECT)],
        {},
        [ActionKind.REPAIR],
        Phase.PENDING,
        id="member to pending: an edited subject is repaired in place",
    ),
    pytest.param(
        [grant(roleRef=OTHER_ROLE)],
        {},
        [ActionKind.RECREATE],
        Phase.PENDING,
        id="member to pending: another roleRef is recreated because roleRef is immutable",
    ),
    pytest.param(
        [grant(metadata={**grant()["metadata"], **DELETING})],
        {},
        [ActionKind.RECREATE],
        Phase.PENDING,
        id="member to pending: a grant someone deleted is recreated",
    ),
    pytest.param(
        [grant(metadata={**grant()["metadata"], "finalizers": []})],
        {},
        [ActionKind.REPAIR],
        Phase.MEMBER,
        id="member stays member: a lost finalizer is repaired",
    ),
    pytest.param(
        [grant(annotations={constants.RELEASED_ANNOTATION: "true"})],
        {},
        [ActionKind.REPAIR],
        Phase.MEMBER,
        id="member stays member: a stray released mark is cleared",
    ),
    pytest.param(
        [grant()],
        {"labels": UNSELECTED},
        [ActionKind.MARK_DRAINING],
        Phase.DRAINING,
        id="member to draining: an unselected namespace is marked draining",
    ),
    pytest.param(
        [grant()],
        {"terminating": True},
        [ActionKind.MARK_DRAINING],
        Phase.DRAINING,
        id="member to draining: a terminating namespace drains so the grantee can release finalizers",
    ),
    pytest.param(
        [grant(annotations=draining(SINCE_10S))],
        {"labels": UNSELECTED},
        [],
        Phase.DRAINING,
        id="draining stays draining: within the grace period nothing is written",
    ),
    pytest.param(
        [grant(annotations=draining(SINCE_10S, released=True))],
        {"labels": UNSELECTED},
        [ActionKind.REVOKE],
        Phase.ABSENT,
        id="draining to absent: a grant the grantee released is revoked",
    ),
    pytest.param(
        [grant(annotations=draining(SINCE_60S))],
        {"labels": UNSELECTED},
        [ActionKind.REVOKE],
        Phase.ABSENT,
        id="draining to absent: a grant past the grace period is revoked anyway",
    ),
    pytest.param(
        [grant(annotations=draining(NOW + timedelta(days=365)))],
        {"labels": UNSELECTED},
        [ActionKind.MARK_DRAINING],
        Phase.DRAINING,
        id="draining: a mark from the future is rewritten to now",
    ),
    pytest.param(
        [grant(annotations=draining(SINCE_10S, released=True))],
        {},
        [ActionKind.RESTORE],
        Phase.MEMBER,
        id="draining to member: a namespace selected again is restored",
    ),
    pytest.param([], {"labels": UNSELECTED}, [], Phase.ABSENT, id="absent stays absent: no grant, no write"),
    pytest.param(
        [],
        {"terminating": True},
        [],
        Phase.ABSENT,
        id="a terminating namespace without grant is never granted",
    ),
]


@pytest.mark.parametrize(("rolebindings", "world", "kinds", "phase"), TRANSITIONS)
def test_each_lifecycle_transition(
    rolebindings: list[dict[str, Any]], world: dict[str, Any], kinds: list[ActionKind], phase: Phase
) -> None:
    plan = plan_for(rolebindings, **world)
    assert [action.kind for action in plan.actions] == kinds
    assert plan.membership.phase("team-a") is phase


def test_create_sends_the_desired_grant_with_traceparent() -> None:
    plan = membership.decide_plan(
        make_policy(),
        membership.Observed(namespaces=(NamespaceInfo("team-a", {"team": "yes"}),)),
        template=TEMPLATE,
        now=NOW,
        grace=GRACE,
        traceparent="00-trace-span-01",
    )
    (action,) = plan.actions
    assert action.body == bindings.build_grant("team-a", template=TEMPLATE, traceparent="00-trace-span-01")
    assert "selected" in action.message


def test_revoke_releases_our_finalizer_and_deletes_by_uid() -> None:
    (action,) = plan_for([grant(annotations=draining(SINCE_60S))], labels=UNSELECTED).actions
    assert action.uid == "uid-team-a"
    assert action.release is not None
    assert constants.GRANT_FINALIZER not in action.release["metadata"].get("finalizers", [])
    assert action.release["metadata"]["resourceVersion"] == "1"
    assert "30s grace period" in action.message


def test_mark_draining_sets_the_mark_and_wakes_up_after_the_grace_period() -> None:
    plan = plan_for([grant()], labels=UNSELECTED)
    (action,) = plan.actions
    assert action.body is not None
    assert action.body["metadata"]["annotations"] == {constants.DRAINING_ANNOTATION: "2026-01-02T03:04:05Z"}
    assert plan.requeue_after == GRACE


def test_a_waiting_drain_wakes_up_when_its_grace_period_ends() -> None:
    assert plan_for([grant(annotations=draining(SINCE_10S))], labels=UNSELECTED).requeue_after == timedelta(
        seconds=20
    )


def test_restore_clears_both_handshake_annotations() -> None:
    (action,) = plan_for([grant(annotations=draining(SINCE_10S, released=True))]).actions
    assert action.body is not None
    assert "annotations" not in action.body["metadata"]


def test_a_binding_with_our_name_that_is_not_ours_is_a_conflict_and_never_touched() -> None:
    foreign = grant()
    foreign["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "helm"}
    plan = plan_for([foreign])
    assert plan.actions == ()
    assert plan.membership.phase("team-a") is Phase.PENDING
    (conflict,) = plan.conflicts
    assert "not managed by discovery owner default" in conflict.message
    ready = plan.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "GrantConflict")


def test_another_owners_grant_is_never_touched() -> None:
    theirs = grant()
    theirs["metadata"]["labels"][constants.OWNER_LABEL] = "other"
    theirs["metadata"]["name"] = "other-grant"
    assert plan_for([theirs], labels=UNSELECTED).actions == ()


def test_a_stale_grant_under_an_old_name_goes_once_the_current_one_works() -> None:
    old = grant()
    old["metadata"]["name"] = "old-name"
    create_first = plan_for([old])
    assert [action.kind for action in create_first.actions] == [ActionKind.CREATE]
    then_revoke = plan_for([old, grant()])
    assert [(action.kind, action.name) for action in then_revoke.actions] == [(ActionKind.REVOKE, "old-name")]


def test_a_static_namespace_that_does_not_exist_gets_no_grant() -> None:
    plan = plan_for([], selection=make_policy(namespaces=["staging"]), namespaces=[])
    assert plan.actions == ()
    assert plan.decisions["staging"].reason is policy.Reason.NOT_FOUND


def test_actions_grant_before_they_drain_and_drain_before_they_revoke() -> None:
    namespaces = [
        NamespaceInfo("a-leaving", {}),
        NamespaceInfo("b-released", {}),
        NamespaceInfo("c-new", {"team": "yes"}),
    ]
    rolebindings = [grant("a-leaving"), grant("b-released", annotations=draining(SINCE_10S, released=True))]
    plan = plan_for(rolebindings, namespaces=namespaces)
    assert [(action.kind, action.namespace) for action in plan.actions] == [
        (ActionKind.CREATE, "c-new"),
        (ActionKind.MARK_DRAINING, "a-leaving"),
        (ActionKind.REVOKE, "b-released"),
    ]


def test_status_lists_sorted_names_with_counts_and_conditions() -> None:
    namespaces = [NamespaceInfo(name, {"team": "yes"}) for name in ("b", "a", "c")] + [NamespaceInfo("d", {})]
    plan = plan_for([grant("b"), grant("a"), grant("d")], namespaces=namespaces)
    assert plan.status == {
        "observedGeneration": 0,
        "members": ["a", "b"],
        "pending": ["c"],
        "draining": ["d"],
        "memberCount": 2,
        "pendingCount": 1,
        "drainingCount": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "GrantsPending",
                "message": "waiting for grants in c",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 0,
            },
            {
                "type": "SelectorsValid",
                "status": "True",
                "reason": "SelectorsValid",
                "message": "1 selector valid",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 0,
            },
        ],
    }
    models.NamespaceDiscoveryStatus.model_validate(plan.status)


def test_an_invalid_selector_is_reported_in_selectors_valid_with_the_field() -> None:
    selection = make_policy(
        selectors=[{"matchLabels": {"team": "yes"}}, {"matchExpressions": [{"key": "x", "operator": "In"}]}]
    )
    plan = plan_for([grant()], selection=selection)
    assert plan.membership.members == ("team-a",)
    valid = plan.status["conditions"][1]
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSelector")
    assert valid["message"] == (
        "selector 1 is invalid and selects nothing: "
        "selectors[1].matchExpressions[0].values: must be non-empty when operator is In"
    )


def test_a_converged_world_republishes_an_identical_status_later() -> None:
    first = plan_for([grant()])
    later = membership.decide_plan(
        make_policy(),
        membership.Observed(namespaces=(NamespaceInfo("team-a", {"team": "yes"}),), rolebindings=(grant(),)),
        template=TEMPLATE,
        now=NOW + timedelta(hours=1),
        grace=GRACE,
        previous_conditions=first.status["conditions"],
    )
    assert later.actions == ()
    assert later.status == first.status
    assert later.status["conditions"][0]["status"] == "True"


def test_a_condition_that_changes_status_gets_a_new_transition_time() -> None:
    first = plan_for([])
    later = membership.decide_plan(
        make_policy(),
        membership.Observed(namespaces=(NamespaceInfo("team-a", {"team": "yes"}),), rolebindings=(grant(),)),
        template=TEMPLATE,
        now=NOW + timedelta(minutes=1),
        grace=GRACE,
        previous_conditions=first.status["conditions"],
    )
    ready, valid = later.status["conditions"]
    assert ready["lastTransitionTime"] == "2026-01-02T03:05:05Z"
    assert valid["lastTransitionTime"] == "2026-01-02T03:04:05Z"


# A simulated world: an API that keeps RoleBindings with finalizers, a namespace controller, a grantee that
# releases draining namespaces (when it is up), users who relabel, delete, edit and squat on names, and
# discovery, which may crash after any prefix of its plan. Discovery plans incrementally (`Planner`, told
# which namespaces changed, as the controller's watches tell it) and every plan is checked against
# `decide_plan` over the whole world; a restart starts from an empty planner.

NAMES = ["team-a", "team-b", "team-c", "kube-system"]
LABELS = st.sampled_from([{}, {"team": "yes"}, {"team": "no"}, {"team": "yes", "env": "dev"}])
SPECS = st.sampled_from(
    [
        {"selectors": [{"matchLabels": {"team": "yes"}}]},
        {"selectors": [{"matchLabels": {"team": "yes"}}], "namespaces": ["team-c"]},
        {
            "selectors": [
                {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
                {"matchLabels": {"team": "no"}},
            ]
        },
        {"selectors": [{"matchLabels": {"team": "yes"}}], "denyNamespaces": ["team-a"]},
        {
            "selectors": [{}, {"matchExpressions": [{"key": "team", "operator": "In"}]}],
            "namespaces": ["team-b"],
        },
        {"selectors": [{"matchLabels": {"team": "yes"}}], "denyNamespaces": []},
    ]
)


class World(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.versions = itertools.count(100)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.rolebindings: dict[tuple[str, str], dict[str, Any]] = {}
        self.spec: dict[str, Any] = {"selectors": [{"matchLabels": {"team": "yes"}}]}
        self.grantee_up = True
        self.foreign: dict[tuple[str, str], dict[str, Any]] = {}
        self.planner = membership.Planner(template=TEMPLATE, grace=GRACE)
        self.dirty: set[str] = set()

    @initialize(
        labels=st.lists(LABELS, min_size=len(NAMES), max_size=len(NAMES)),
        squatter=st.sampled_from([None, *NAMES]),
    )
    def cluster_exists(self, labels: list[dict[str, str]], squatter: str | None) -> None:
        """Start from a populated cluster, sometimes with someone else's RoleBinding already on our name."""
        for name, namespace_labels in zip(NAMES, labels, strict=True):
            self.user_creates_or_relabels_a_namespace(name, namespace_labels)
        if squatter is not None:
            self.user_creates_their_own_rolebinding(squatter, same_name=True)

    # The API ------------------------------------------------------------------------------------------------

    def _store(self, key: tuple[str, str], body: dict[str, Any]) -> None:
        self.dirty.add(key[0])  # what a RoleBinding watch event tells the controller
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(next(self.versions))
        body["metadata"].setdefault("uid", f"uid-{next(self.versions)}")
        if body["metadata"].get("deletionTimestamp") and not body["metadata"].get("finalizers"):
            self.rolebindings.pop(key, None)
        else:
            self.rolebindings[key] = body

    def _delete(self, key: tuple[str, str]) -> None:
        current = self.rolebindings.get(key)
        if current is not None:
            current = copy.deepcopy(current)
            current["metadata"].setdefault("deletionTimestamp", bindings.format_time(self.now))
            self._store(key, current)

    def _plan(self) -> membership.Plan:
        """The incremental plan, checked against the full one."""
        full = membership.decide_plan(
            self._selection(),
            membership.Observed.from_manifests(
                namespaces=self._namespace_manifests(), rolebindings=list(self.rolebindings.values())
            ),
            template=TEMPLATE,
            now=self.now,
            grace=GRACE,
        )
        incremental = self._incremental()
        assert incremental == full
        return incremental

    def _selection(self) -> policy.SelectorPolicy:
        return policy.SelectorPolicy.from_spec(models.NamespaceDiscoverySpec.model_validate(self.spec))

    def _incremental(self) -> membership.Plan:
        """What the controller does: gather only the dirty and due names, unless everything is needed."""
        selection = self._selection()
        names: set[str] | None = None
        if not self.planner.needs_all(selection):
            names = self.dirty | self.planner.due(self.now)
        self.dirty = set()
        observed = membership.Observed.from_manifests(
            namespaces=[
                item
                for item in self._namespace_manifests()
                if names is None or item["metadata"]["name"] in names
            ],
            rolebindings=[
                body for key, body in self.rolebindings.items() if names is None or key[0] in names
            ],
        )
        return self.planner.plan(selection, observed, names=names, now=self.now)

    def _namespace_manifests(self) -> list[dict[str, Any]]:
        manifests = []
        for name, state in self.namespaces.items():
            metadata: dict[str, Any] = {"name": name, "labels": state["labels"]}
            if state["terminating"]:
                metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            manifests.append({"metadata": metadata})
        return manifests

    def _apply(self, action: membership.Action) -> None:
        """Discovery's writes, checked the way the API server and our promises require."""
        key = (action.namespace, action.name)
        current = self.rolebindings.get(key)
        if current is not None:
            assert bindings.is_managed(current, owner=TEMPLATE.owner), f"touched a foreign binding {key}"
        if action.kind in (ActionKind.CREATE, ActionKind.RECREATE):
            state = self.namespaces.get(action.namespace)
            assert state is not None and not state["terminating"], f"granted in a non-member namespace {key}"
        # A binding pointing at another ClusterRole never granted ours: it goes without the handshake.
        grants_ours = current is not None and "roleRef" not in bindings.access_drift(
            current, template=TEMPLATE
        )
        if action.kind is ActionKind.REVOKE and grants_ours and action.name == TEMPLATE.name:
            assert current is not None
            since = bindings.parse_time(bindings.draining_since(current))
            assert since is not None, f"revoked {key} without publishing draining first"
            assert bindings.is_released(current) or self.now - since >= GRACE, f"revoked {key} too early"
        if action.kind in (ActionKind.REVOKE, ActionKind.RECREATE):
            if current is not None and current["metadata"]["uid"] == action.uid:
                if action.release is not None:
                    if (
                        current["metadata"]["resourceVersion"]
                        != action.release["metadata"]["resourceVersion"]
                    ):
                        return  # 409: the world moved
                    self._store(key, action.release)
                self._delete(key)
            if action.kind is ActionKind.REVOKE:
                return
            current = self.rolebindings.get(key)
        assert action.body is not None
        if action.kind in (ActionKind.CREATE, ActionKind.RECREATE):
            if current is None:  # else 409 AlreadyExists
                self._store(key, action.body)
            return
        if (
            current is None
            or current["metadata"]["resourceVersion"] != action.body["metadata"]["resourceVersion"]
        ):
            return  # 404 or 409
        if current["metadata"].get("deletionTimestamp"):
            assert set(action.body["metadata"].get("finalizers", [])) <= set(
                current["metadata"].get("finalizers", [])
            )
        self._store(key, action.body)

    # Discovery ----------------------------------------------------------------------------------------------

    @rule(crash_after=st.integers(min_value=0, max_value=6))
    def discovery_reconciles(self, crash_after: int) -> None:
        for action in self._plan().actions[:crash_after]:
            self._apply(action)

    # The grantee and the cluster ----------------------------------------------------------------------------

    @rule()
    def discovery_restarts(self) -> None:
        self.planner = membership.Planner(template=TEMPLATE, grace=GRACE)

    @rule()
    def grantee_releases_draining_namespaces(self) -> None:
        if not self.grantee_up:
            return
        for key, body in list(self.rolebindings.items()):
            if bindings.is_managed(body, owner=TEMPLATE.owner) and bindings.draining_since(body):
                released = copy.deepcopy(body)
                released["metadata"].setdefault("annotations", {})[constants.RELEASED_ANNOTATION] = "true"
                self._store(key, released)

    @rule(up=st.booleans())
    def grantee_goes_up_or_down(self, up: bool) -> None:
        self.grantee_up = up

    @rule(seconds=st.sampled_from([1, 10, 31]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def namespace_controller_runs(self) -> None:
        for name, state in list(self.namespaces.items()):
            if state["terminating"]:
                inside = [key for key in self.rolebindings if key[0] == name]
                for key in inside:
                    self._delete(key)
                if not any(key[0] == name for key in self.rolebindings):
                    del self.namespaces[name]
                    self.dirty.add(name)
                    for key in [key for key in self.foreign if key[0] == name]:
                        del self.foreign[key]

    # Users --------------------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), labels=LABELS)
    def user_creates_or_relabels_a_namespace(self, name: str, labels: dict[str, str]) -> None:
        state = self.namespaces.setdefault(name, {"labels": {}, "terminating": False})
        state["labels"] = dict(labels)
        self.dirty.add(name)

    @rule(name=st.sampled_from(NAMES))
    def user_deletes_a_namespace(self, name: str) -> None:
        if name in self.namespaces:
            self.namespaces[name]["terminating"] = True
            self.dirty.add(name)

    @rule(spec=SPECS)
    def user_edits_the_spec(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    @precondition(
        lambda self: any(bindings.is_managed(body, owner="default") for body in self.rolebindings.values())
    )
    @rule(data=st.data(), how=st.sampled_from(["delete", "subjects", "finalizer", "roleRef"]))
    def user_tampers_with_a_grant(self, data: st.DataObject, how: str) -> None:
        ours = sorted(
            key for key, body in self.rolebindings.items() if bindings.is_managed(body, owner="default")
        )
        key = data.draw(st.sampled_from(ours))
        body = copy.deepcopy(self.rolebindings[key])
        if how == "delete":
            self._delete(key)
            return
        if how == "subjects":
            body["subjects"] = OTHER_SUBJECT
        elif how == "roleRef":
            body["roleRef"] = OTHER_ROLE  # the API would refuse; a recreate-from-outside looks the same
        elif not body["metadata"].get("deletionTimestamp"):
            body["metadata"]["finalizers"] = []
        self._store(key, body)

    @rule(name=st.sampled_from(NAMES), same_name=st.booleans())
    def user_creates_their_own_rolebinding(self, name: str, same_name: bool) -> None:
        state = self.namespaces.get(name)
        binding_name = TEMPLATE.name if same_name else "their-own"
        if state is None or state["terminating"] or (name, binding_name) in self.rolebindings:
            return
        body = {
            "metadata": {
                "name": binding_name,
                "namespace": name,
                "labels": {"app.kubernetes.io/managed-by": "helm"},
            },
            "roleRef": OTHER_ROLE,
            "subjects": OTHER_SUBJECT,
        }
        self._store((name, binding_name), body)
        self.foreign[(name, binding_name)] = self.rolebindings[(name, binding_name)]

    # Promises -----------------------------------------------------------------------------------------------

    @invariant()
    def foreign_bindings_are_untouched(self) -> None:
        for key, body in self.foreign.items():
            if not self.namespaces.get(key[0], {}).get("terminating"):
                assert self.rolebindings.get(key) == body

    @invariant()
    def only_what_we_own_carries_our_finalizer(self) -> None:
        for body in self.rolebindings.values():
            if bindings.has_finalizer(body):
                assert bindings.is_managed(body, owner=TEMPLATE.owner)

    def teardown(self) -> None:
        """Once users stop, discovery converges (the grantee's release or the grace period ends each drain):
        grants == members, nothing draining, no namespace stuck terminating."""
        for _ in range(12):
            plan = self._plan()
            for action in plan.actions:
                self._apply(action)
            self.grantee_releases_draining_namespaces()
            self.namespace_controller_runs()
            if plan.requeue_after is not None:
                self.now += plan.requeue_after
        plan = self._plan()
        assert plan.actions == ()
        conflicted = {conflict.namespace for conflict in plan.conflicts}
        granted = {
            key[0]
            for key, body in self.rolebindings.items()
            if bindings.is_managed(body, owner=TEMPLATE.owner) and not bindings.is_deleting(body)
        }
        members = policy.members_of(plan.decisions)
        assert granted == members - conflicted
        assert set(plan.membership.members) == granted
        assert set(plan.membership.pending) == members & conflicted
        assert plan.membership.draining == ()
        assert not any(state["terminating"] for state in self.namespaces.values()), "a namespace got stuck"
        assert all(
            bindings.is_managed(body, owner="default") or key in self.foreign
            for key, body in self.rolebindings.items()
        )


World.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_applying_plans_converges_and_never_touches_foreign_bindings = World.TestCase

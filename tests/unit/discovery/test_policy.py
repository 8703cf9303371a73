"""Selection policy: each predicate, the chain's order, and the membership rule as a property."""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery import models, policy
from discovery.policy import Decision, NamespaceInfo, Reason

TEAM_A = {"matchLabels": {"team": "a"}}
ENV_IN = {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "prod"]}]}
BROKEN = {"matchExpressions": [{"key": "team", "operator": "In"}]}


def make_policy(
    *,
    selectors: Sequence[object] = (),
    namespaces: Sequence[str] = (),
    deny: list[str] | None = None,
) -> policy.SelectorPolicy:
    raw: dict[str, Any] = {"selectors": list(selectors), "namespaces": list(namespaces)}
    if deny is not None:
        raw["denyNamespaces"] = deny
    return policy.SelectorPolicy.from_spec(models.NamespaceDiscoverySpec.model_validate(raw))


def ns(name: str, labels: dict[str, str] | None = None, *, terminating: bool = False) -> NamespaceInfo:
    return NamespaceInfo(name, labels or {}, terminating=terminating)


Predicate = Callable[[NamespaceInfo, policy.SelectorPolicy], Decision | None]

PREDICATES = [
    pytest.param(
        policy.is_protected,
        ns("kube-system"),
        make_policy(deny=[]),
        Reason.PROTECTED,
        id="is_protected: kube-system is protected even with an empty deny list",
    ),
    pytest.param(policy.is_protected, ns("team-a"), make_policy(), None, id="is_protected: other names pass"),
    pytest.param(
        policy.is_terminating,
        ns("team-a", terminating=True),
        make_policy(),
        Reason.TERMINATING,
        id="is_terminating: a namespace being deleted leaves",
    ),
    pytest.param(
        policy.is_terminating,
        ns("team-a"),
        make_policy(),
        None,
        id="is_terminating: an active namespace passes",
    ),
    pytest.param(
        policy.is_denied,
        ns("team-a"),
        make_policy(deny=["team-a"]),
        Reason.DENIED,
        id="is_denied: a listed namespace is denied",
    ),
    pytest.param(
        policy.is_denied, ns("team-a"), make_policy(), None, id="is_denied: an unlisted namespace passes"
    ),
    pytest.param(
        policy.is_missing,
        NamespaceInfo("team-a", exists=False),
        make_policy(),
        Reason.NOT_FOUND,
        id="is_missing: a static name that does not exist is not found",
    ),
    pytest.param(
        policy.is_missing, ns("team-a"), make_policy(), None, id="is_missing: an existing namespace passes"
    ),
    pytest.param(
        policy.is_static,
        ns("team-a"),
        make_policy(namespaces=["team-a"]),
        Reason.STATIC_LIST,
        id="is_static: a listed namespace is a member",
    ),
    pytest.param(
        policy.is_static, ns("team-a"), make_policy(), None, id="is_static: an unlisted namespace passes"
    ),
    pytest.param(
        policy.matches_selector,
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[TEAM_A]),
        Reason.SELECTOR_MATCHED,
        id="matches_selector: a matching namespace is selected",
    ),
    pytest.param(
        policy.matches_selector,
        ns("team-b", {"team": "b"}),
        make_policy(selectors=[TEAM_A]),
        None,
        id="matches_selector: a non-matching namespace passes",
    ),
    pytest.param(
        policy.matches_selector,
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[BROKEN]),
        Reason.INVALID_SELECTOR,
        id="matches_selector: an invalid selector selects nothing and says so",
    ),
    pytest.param(
        policy.matches_selector,
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[{}]),
        Reason.INVALID_SELECTOR,
        id="matches_selector: an empty selector selects nothing and says so",
    ),
    pytest.param(
        policy.matches_selector,
        ns("team-a", {"team": "a"}),
        make_policy(),
        None,
        id="matches_selector: no selectors select nothing by label",
    ),
]


@pytest.mark.parametrize(("predicate", "namespace", "selection", "reason"), PREDICATES)
def test_each_predicate_decides_or_passes(
    predicate: Predicate, namespace: NamespaceInfo, selection: policy.SelectorPolicy, reason: Reason | None
) -> None:
    decision = predicate(namespace, selection)
    if reason is None:
        assert decision is None
    else:
        assert decision is not None
        assert decision.reason is reason
        assert decision.member is (reason in (Reason.STATIC_LIST, Reason.SELECTOR_MATCHED))


CHAIN = [
    pytest.param(
        ns("kube-system", {"team": "a"}),
        make_policy(selectors=[TEAM_A], namespaces=["kube-system"], deny=[]),
        Reason.PROTECTED,
        id="protected beats the static list and a matching label",
    ),
    pytest.param(
        ns("team-a", {"team": "a"}, terminating=True),
        make_policy(selectors=[TEAM_A], namespaces=["team-a"]),
        Reason.TERMINATING,
        id="a terminating namespace is never a member",
    ),
    pytest.param(
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[TEAM_A], namespaces=["team-a"], deny=["team-a"]),
        Reason.DENIED,
        id="the deny list beats the static list and a matching label",
    ),
    pytest.param(
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[TEAM_A], namespaces=["team-a"]),
        Reason.STATIC_LIST,
        id="the static list is reported before a matching selector",
    ),
    pytest.param(
        ns("team-a"),
        make_policy(selectors=[BROKEN], namespaces=["team-a"]),
        Reason.STATIC_LIST,
        id="the static list still applies with an invalid selector",
    ),
    pytest.param(
        ns("team-a", {"env": "dev"}),
        make_policy(selectors=[BROKEN, ENV_IN]),
        Reason.SELECTOR_MATCHED,
        id="valid selectors still apply next to an invalid one",
    ),
    pytest.param(
        ns("team-b", {"team": "b"}),
        make_policy(selectors=[TEAM_A]),
        Reason.NOT_SELECTED,
        id="a namespace matching no selector is not selected",
    ),
    pytest.param(
        ns("team-a", {"team": "a"}),
        make_policy(),
        Reason.NOT_SELECTED,
        id="without selectors labels select nothing",
    ),
]


@pytest.mark.parametrize(("namespace", "selection", "reason"), CHAIN)
def test_the_chain_puts_exclusions_first(
    namespace: NamespaceInfo, selection: policy.SelectorPolicy, reason: Reason
) -> None:
    assert selection.decide(namespace).reason is reason


MESSAGES = [
    pytest.param(
        ns("team-a", {"env": "prod"}),
        make_policy(selectors=[TEAM_A, ENV_IN]),
        "matched selector 1 (env in (dev,prod))",
        id="the message names the matching selector and renders it",
    ),
    pytest.param(
        ns("team-a", {"team": "a"}),
        make_policy(selectors=[BROKEN, {}]),
        "matched no valid selector; invalid selectors 0, 1 select nothing (see SelectorsValid)",
        id="the message names every invalid selector",
    ),
    pytest.param(
        ns("team-b"),
        make_policy(selectors=[TEAM_A, ENV_IN]),
        "matched none of 2 selectors",
        id="the message counts the selectors that did not match",
    ),
    pytest.param(
        ns("team-b"),
        make_policy(),
        "not in spec.namespaces, and no selectors are configured",
        id="the message says when no selectors are configured",
    ),
    pytest.param(
        ns("team-a"),
        make_policy(deny=["team-a"]),
        "listed in spec.denyNamespaces",
        id="denied names the field",
    ),
]


@pytest.mark.parametrize(("namespace", "selection", "message"), MESSAGES)
def test_decision_messages_say_why(
    namespace: NamespaceInfo, selection: policy.SelectorPolicy, message: str
) -> None:
    assert selection.decide(namespace).message == message


def test_a_static_namespace_that_does_not_exist_is_not_a_member_until_it_exists() -> None:
    selection = make_policy(namespaces=["staging", "kube-system"])
    decisions = selection.decide_all([ns("production")])
    assert list(decisions) == ["kube-system", "production", "staging"]
    assert decisions["staging"] == Decision(
        False, Reason.NOT_FOUND, "listed in spec.namespaces but does not exist (yet)"
    )
    assert decisions["kube-system"].reason is Reason.PROTECTED
    assert policy.members_of(selection.decide_all([ns("staging")])) == {"staging"}


def test_reasons_are_camel_case_strings_usable_verbatim() -> None:
    assert [str(reason) for reason in Reason] == [
        "Protected",
        "Terminating",
        "Denied",
        "NotFound",
        "StaticList",
        "SelectorMatched",
        "InvalidSelector",
        "NotSelected",
    ]


def test_the_default_deny_list_is_the_kubernetes_system_namespaces() -> None:
    selection = make_policy()
    assert selection.denied == {"kube-system", "kube-public", "kube-node-lease"}
    assert selection.protected == selection.denied


def test_protected_names_come_from_the_caller() -> None:
    spec = models.NamespaceDiscoverySpec.model_validate({"namespaces": ["toolhive-system"]})
    selection = policy.SelectorPolicy.from_spec(spec, protected=["toolhive-system"])
    assert selection.decide(ns("toolhive-system")).reason is Reason.PROTECTED


@pytest.mark.parametrize(
    ("manifest", "terminating"),
    [
        pytest.param(
            {"metadata": {"name": "a"}, "status": {"phase": "Active"}}, False, id="an active namespace"
        ),
        pytest.param(
            {"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
            True,
            id="a deletionTimestamp means terminating",
        ),
        pytest.param(
            {"metadata": {"name": "a"}, "status": {"phase": "Terminating"}},
            True,
            id="phase Terminating means terminating",
        ),
    ],
)
def test_namespace_info_reads_termination_from_the_manifest(
    manifest: dict[str, Any], terminating: bool
) -> None:
    info = NamespaceInfo.from_manifest(manifest)
    assert (info.name, info.terminating, dict(info.labels)) == ("a", terminating, {})


# Property: members == (selected | static) - denied - protected - terminating, exactly.

KEYS = ["team", "env", "example.com/tier"]
VALUES = ["a", "b", ""]
NAMES = [f"ns-{index}" for index in range(6)] + ["kube-system", "kube-public"]
PROTECTED = frozenset(models.DEFAULT_DENY_NAMESPACES)

labels_strategy = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
value_lists = st.lists(st.sampled_from(VALUES), min_size=1, max_size=3)
requirement_strategy = st.one_of(
    st.builds(
        lambda k, o, v: {"key": k, "operator": o, "values": v},
        st.sampled_from(KEYS),
        st.sampled_from(["In", "NotIn"]),
        value_lists,
    ),
    st.builds(
        lambda k, o: {"key": k, "operator": o},
        st.sampled_from(KEYS),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
valid_selector = st.builds(
    lambda labels, expressions: {"matchLabels": labels, "matchExpressions": expressions},
    labels_strategy,
    st.lists(requirement_strategy, max_size=3),
).filter(lambda raw: raw["matchLabels"] or raw["matchExpressions"])
DEFECTS: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
    lambda raw: {},
    lambda raw: {**raw, "matchExpressions": [*raw["matchExpressions"], {"key": "team", "operator": "In"}]},
    lambda raw: {
        **raw,
        "matchExpressions": [
            *raw["matchExpressions"],
            {"key": "team", "operator": "Exists", "values": ["a"]},
        ],
    },
    lambda raw: {
        **raw,
        "matchExpressions": [*raw["matchExpressions"], {"key": "team", "operator": "Gt", "values": ["1"]}],
    },
    lambda raw: {**raw, "matchLabels": {**raw["matchLabels"], "bad key": "a"}},
    lambda raw: {**raw, "matchLabels": {**raw["matchLabels"], "team": "-bad"}},
]
invalid_selector = st.builds(lambda raw, defect: defect(raw), valid_selector, st.sampled_from(DEFECTS))
tagged_selector = st.one_of(
    st.tuples(valid_selector, st.just(True)),
    st.tuples(invalid_selector, st.just(False)),
)


def oracle_matches(raw: dict[str, Any], labels: dict[str, str]) -> bool:
    """An independent reading of Kubernetes selector semantics, for valid selectors."""
    for key, value in raw["matchLabels"].items():
        if labels.get(key) != value:
            return False
    for requirement in raw["matchExpressions"]:
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


world_strategy = st.fixed_dictionaries(
    {
        "namespaces": st.dictionaries(
            st.sampled_from(NAMES), st.tuples(labels_strategy, st.booleans()), max_size=len(NAMES)
        ),
        "selectors": st.lists(tagged_selector, max_size=4),
        "static": st.lists(st.sampled_from([*NAMES, "ns-missing"]), max_size=4, unique=True),
        "deny": st.one_of(st.none(), st.lists(st.sampled_from(NAMES), max_size=3, unique=True)),
    }
)


@settings(max_examples=300, deadline=None)
@given(world=world_strategy)
def test_members_are_selected_or_static_minus_denied_protected_and_terminating(world: dict[str, Any]) -> None:
    selection = make_policy(
        selectors=[raw for raw, _ in world["selectors"]], namespaces=world["static"], deny=world["deny"]
    )
    infos = [
        ns(name, labels, terminating=terminating)
        for name, (labels, terminating) in world["namespaces"].items()
    ]
    denied = set(models.DEFAULT_DENY_NAMESPACES if world["deny"] is None else world["deny"])
    selected = {
        name
        for name, (labels, _) in world["namespaces"].items()
        if any(valid and oracle_matches(raw, labels) for raw, valid in world["selectors"])
    }
    static = set(world["static"]) & set(world["namespaces"])
    terminating = {name for name, (_, gone) in world["namespaces"].items() if gone}

    decisions = selection.decide_all(infos)

    assert policy.members_of(decisions) == (selected | static) - denied - PROTECTED - terminating
    assert [item.index for item in selection.invalid_selectors] == [
        index for index, (_, valid) in enumerate(world["selectors"]) if not valid
    ]
    for name, decision in decisions.items():
        if decision.reason is Reason.SELECTOR_MATCHED:
            index = int(decision.message.split()[2])
            assert oracle_matches(world["selectors"][index][0], world["namespaces"][name][0])

"""LabelSelectors: Kubernetes validation with messages naming the field, matching per operator, rendering."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery import selectors
from toolhive.testing import _selectors as loopback_selectors

LABELS = {"team": "a", "env": "prod", "tier": ""}


def parse_valid(raw: dict[str, Any], *, index: int = 0) -> selectors.Selector:
    parsed = selectors.parse_selector(raw, index=index)
    assert isinstance(parsed, selectors.Selector), parsed
    return parsed


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


MATCHING = [
    pytest.param({"matchLabels": {"team": "a"}}, True, id="matchLabels matches an equal value"),
    pytest.param({"matchLabels": {"team": "b"}}, False, id="matchLabels rejects another value"),
    pytest.param({"matchLabels": {"owner": "a"}}, False, id="matchLabels rejects a missing key"),
    pytest.param({"matchLabels": {"tier": ""}}, True, id="matchLabels matches an empty value"),
    pytest.param({"matchLabels": {"team": "a", "env": "dev"}}, False, id="matchLabels entries are ANDed"),
    pytest.param(expression("team", "In", "a", "b"), True, id="In matches a listed value"),
    pytest.param(expression("team", "In", "b", "c"), False, id="In rejects an unlisted value"),
    pytest.param(expression("owner", "In", "a"), False, id="In rejects a missing key"),
    pytest.param(expression("team", "NotIn", "b"), True, id="NotIn matches an unlisted value"),
    pytest.param(expression("team", "NotIn", "a", "b"), False, id="NotIn rejects a listed value"),
    pytest.param(expression("owner", "NotIn", "a"), True, id="NotIn matches a missing key"),
    pytest.param(expression("team", "Exists"), True, id="Exists matches a present key"),
    pytest.param(expression("tier", "Exists"), True, id="Exists matches a present key with empty value"),
    pytest.param(expression("owner", "Exists"), False, id="Exists rejects a missing key"),
    pytest.param(expression("owner", "DoesNotExist"), True, id="DoesNotExist matches a missing key"),
    pytest.param(expression("team", "DoesNotExist"), False, id="DoesNotExist rejects a present key"),
    pytest.param(
        {"matchLabels": {"team": "a"}, **expression("env", "In", "dev")},
        False,
        id="matchLabels and matchExpressions are ANDed",
    ),
    pytest.param(
        {"matchLabels": {"team": "a"}, **expression("env", "NotIn", "dev")},
        True,
        id="a selector matches when every requirement does",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), MATCHING)
def test_matching_follows_kubernetes(raw: dict[str, Any], expected: bool) -> None:
    assert parse_valid(raw).matches(LABELS) is expected


RENDERING = [
    pytest.param({"matchLabels": {"team": "a"}}, "team=a", id="matchLabels renders as equality"),
    pytest.param(expression("team", "In", "b", "a", "b"), "team in (a,b)", id="In values sorted and unique"),
    pytest.param(expression("team", "In", "a"), "team=a", id="In with one value renders as equality"),
    pytest.param(expression("team", "NotIn", "b", "a"), "team notin (a,b)", id="NotIn renders as notin"),
    pytest.param(expression("team", "NotIn", "a"), "team!=a", id="NotIn with one value renders as !="),
    pytest.param(expression("team", "Exists"), "team", id="Exists renders as the bare key"),
    pytest.param(expression("team", "DoesNotExist"), "!team", id="DoesNotExist renders as !key"),
    pytest.param({"matchLabels": {"tier": ""}}, "tier=", id="an empty value renders as key="),
    pytest.param(
        {"matchLabels": {"z": "1", "a": "2"}, **expression("m", "Exists")},
        "a=2,m,z=1",
        id="requirements are sorted by key",
    ),
    pytest.param(
        {"matchLabels": {"team": "a"}, **expression("team", "In", "a")},
        "team=a",
        id="duplicate requirements collapse",
    ),
    pytest.param(
        {"matchLabels": {"example.com/team": "a"}},
        "example.com/team=a",
        id="prefixed keys render unchanged",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), RENDERING)
def test_rendering_is_the_label_selector_query_string(raw: dict[str, Any], expected: str) -> None:
    assert parse_valid(raw).render() == expected


INVALID = [
    pytest.param({}, "selectors[0]: empty selector refused", id="an empty selector is refused"),
    pytest.param(
        {"matchLabels": {}, "matchExpressions": []},
        "selectors[0]: empty selector refused",
        id="a selector with both fields empty is refused",
    ),
    pytest.param("team=a", "selectors[0]: must be an object", id="a string is not a selector"),
    pytest.param(
        {"matchLabel": {"team": "a"}},
        "selectors[0].matchLabel: unknown field",
        id="a misspelt field is named",
    ),
    pytest.param(
        {"matchLabels": ["team=a"]},
        "selectors[0].matchLabels: must be an object",
        id="matchLabels must be an object",
    ),
    pytest.param(
        {"matchLabels": {"bad key": "a"}},
        'selectors[0].matchLabels["bad key"]: invalid label key: name part must consist of',
        id="an invalid matchLabels key is named",
    ),
    pytest.param(
        {"matchLabels": {"team": "a b"}},
        "selectors[0].matchLabels[\"team\"]: invalid label value 'a b': must be empty or consist of",
        id="an invalid matchLabels value is named",
    ),
    pytest.param(
        {"matchLabels": {"team": "x" * 64}},
        "must be no more than 63 characters",
        id="a label value longer than 63 characters is refused",
    ),
    pytest.param(
        {"matchLabels": {"team": 5}},
        "invalid label value 5: must be a string, not int",
        id="a non-string label value is refused",
    ),
    pytest.param(
        {"matchExpressions": "team in (a)"},
        "selectors[0].matchExpressions: must be a list",
        id="matchExpressions must be a list",
    ),
    pytest.param(
        {"matchExpressions": [["team"]]},
        "selectors[0].matchExpressions[0]: must be an object",
        id="a requirement must be an object",
    ),
    pytest.param(
        expression("team", "In"),
        "selectors[0].matchExpressions[0].values: must be non-empty when operator is In",
        id="In without values is refused",
    ),
    pytest.param(
        expression("team", "NotIn"),
        "selectors[0].matchExpressions[0].values: must be non-empty when operator is NotIn",
        id="NotIn without values is refused",
    ),
    pytest.param(
        expression("team", "Exists", "a"),
        "selectors[0].matchExpressions[0].values: must be empty when operator is Exists",
        id="Exists with values is refused",
    ),
    pytest.param(
        expression("team", "DoesNotExist", "a"),
        "selectors[0].matchExpressions[0].values: must be empty when operator is DoesNotExist",
        id="DoesNotExist with values is refused",
    ),
    pytest.param(
        expression("team", "in", "a"),
        "selectors[0].matchExpressions[0].operator: 'in' is not one of In, NotIn, Exists, DoesNotExist",
        id="operators are case-sensitive",
    ),
    pytest.param(
        expression("team", "Gt", "1"),
        "selectors[0].matchExpressions[0].operator: 'Gt' is not one of",
        id="node-selector operators are refused",
    ),
    pytest.param(
        {"matchExpressions": [{"key": "team", "values": ["a"]}]},
        "selectors[0].matchExpressions[0].operator: required",
        id="a requirement without operator is refused",
    ),
    pytest.param(
        {"matchExpressions": [{"operator": "Exists"}]},
        "selectors[0].matchExpressions[0].key: required",
        id="a requirement without key is refused",
    ),
    pytest.param(
        {"matchExpressions": [{"key": "team", "operator": "Exists", "value": "a"}]},
        "selectors[0].matchExpressions[0].value: unknown field",
        id="a misspelt requirement field is named",
    ),
    pytest.param(
        expression("team", "In", "ok", "-bad"),
        "selectors[0].matchExpressions[0].values[1]: invalid label value '-bad'",
        id="an invalid value is named by position",
    ),
    pytest.param(
        {"matchExpressions": [{"key": "team", "operator": "In", "values": "a"}]},
        "selectors[0].matchExpressions[0].values: must be a list of label values",
        id="values must be a list",
    ),
    pytest.param(
        expression("Example.com/team", "Exists"),
        "prefix part must be a lowercase RFC 1123 subdomain",
        id="an uppercase key prefix is refused",
    ),
    pytest.param(expression("a/b/c", "Exists"), "at most one '/'", id="a key with two slashes is refused"),
    pytest.param(
        expression("/team", "Exists"), "prefix part must be non-empty", id="an empty prefix is refused"
    ),
    pytest.param(
        expression("example.com/", "Exists"), "name part must be non-empty", id="an empty key name is refused"
    ),
    pytest.param(
        expression("k" * 64, "Exists"),
        "name part must be no more than 63 characters",
        id="a key name longer than 63 characters is refused",
    ),
    pytest.param(
        expression(("p" * 250) + ".com/team", "Exists"),
        "prefix part must be no more than 253 characters",
        id="a key prefix longer than 253 characters is refused",
    ),
]


@pytest.mark.parametrize(("raw", "fragment"), INVALID)
def test_invalid_selectors_name_the_field(raw: object, fragment: str) -> None:
    parsed = selectors.parse_selector(raw, index=0)
    assert isinstance(parsed, selectors.InvalidSelector)
    assert fragment in parsed.message
    assert parsed.message.startswith("selector 0 is invalid and selects nothing: ")


def test_an_invalid_selector_never_matches() -> None:
    parsed = selectors.parse_selector(expression("team", "In"), index=0)
    assert parsed.matches({"team": "a"}) is False
    assert parsed.matches({}) is False


def test_every_problem_of_a_selector_is_reported() -> None:
    raw = {"matchLabels": {"bad key": "a"}, "matchExpressions": [{"key": "team", "operator": "In"}]}
    parsed = selectors.parse_selector(raw, index=3)
    assert isinstance(parsed, selectors.InvalidSelector)
    assert [problem.field for problem in parsed.problems] == [
        'selectors[3].matchLabels["bad key"]',
        "selectors[3].matchExpressions[0].values",
    ]


def test_one_bad_requirement_invalidates_the_whole_selector_instead_of_loosening_it() -> None:
    raw = {"matchExpressions": [{"key": "team", "operator": "Exists"}, {"key": "env", "operator": "NotIn"}]}
    assert isinstance(selectors.parse_selector(raw, index=0), selectors.InvalidSelector)


def test_selectors_are_parsed_independently_with_their_index() -> None:
    parsed = selectors.parse_selectors([{"matchLabels": {"team": "a"}}, {}, expression("env", "Exists")])
    assert [type(item).__name__ for item in parsed] == ["Selector", "InvalidSelector", "Selector"]
    assert [item.index for item in parsed] == [0, 1, 2]


VALID_KEYS = [
    pytest.param("team", id="a plain name"),
    pytest.param("kubernetes.io/metadata.name", id="a prefixed name"),
    pytest.param("A_b-c.D", id="a name with mixed case, underscore, dash and dot"),
    pytest.param("x" * 63, id="a 63 character name"),
    pytest.param("a.b-c.example/x", id="a multi-label DNS prefix"),
]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_label_keys_are_accepted(key: str) -> None:
    assert selectors.validate_label_key(key) is None


@pytest.mark.parametrize("value", ["", "a", "A-b_c.d", "9" * 63])
def test_valid_label_values_are_accepted(value: str) -> None:
    assert selectors.validate_label_value(value) is None


# Property: the rendered query string selects exactly what the selector matches, as read by the loopback
# API's own parser (written separately, from the Kubernetes documentation). Empty values inside a multi-value
# set (`k in (,a)`) are left out: Kubernetes accepts them, the loopback parser drops them (reported).
KEYS = ["team", "example.com/tier", "a.b_c-d"]
VALUES = ["a", "b", "x.y-z_1"]
requirements = st.one_of(
    st.builds(
        lambda key, operator, values: {"key": key, "operator": operator, "values": values},
        st.sampled_from(KEYS),
        st.sampled_from(["In", "NotIn"]),
        st.one_of(st.lists(st.sampled_from(VALUES), min_size=1, max_size=3), st.just([""])),
    ),
    st.builds(
        lambda key, operator: {"key": key, "operator": operator},
        st.sampled_from(KEYS),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
raw_selectors = st.builds(
    lambda labels, expressions: {"matchLabels": labels, "matchExpressions": expressions},
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["", *VALUES]), max_size=2),
    st.lists(requirements, max_size=3),
).filter(lambda raw: raw["matchLabels"] or raw["matchExpressions"])


@settings(max_examples=300, deadline=None)
@given(raw=raw_selectors, labels=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["", *VALUES])))
def test_the_rendered_query_string_selects_what_the_selector_matches(
    raw: dict[str, Any], labels: dict[str, str]
) -> None:
    selector = parse_valid(raw)
    parsed = loopback_selectors.parse_label_selector(selector.render())
    assert parsed.matches(labels) is selector.matches(labels)

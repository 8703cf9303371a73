"""The CEL subset used for CRD `x-kubernetes-validations` rules (pure evaluation, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from toolhive.testing import _cel


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.a == 1 && self.b != 'x'", {"a": 1, "b": "y"}, True),
        ("self.a > 1 || self.b == 'x'", {"a": 1, "b": "y"}, False),
        ("self.name in ['none', 'network']", {"name": "none"}, True),
        ("!has(self.a) || self.a.size() <= 3", {"a": "abcd"}, False),
        ("has(self.a) ? size(self.a) == 2 : true", {}, True),
        ("self.all(x, x.startsWith('a'))", ["ab", "ac"], True),
        ("self.exists(x, x.endsWith('z'))", ["ab", "ac"], False),
        ("self.exists_one(x, x.contains('b'))", ["ab", "ac"], True),
        ("self.matches('^[a-z]+$')", "abc", True),
        ("self[0] + self[1] == 3", [1, 2], True),
        ("self.ports.all(p, p.port >= 1 && p.port <= 65535)", {"ports": [{"port": 80}, {"port": 0}]}, False),
        ("-self.a * 2 + 10 % 3 == -3", {"a": 2}, True),
    ],
    ids=[
        "and",
        "or",
        "in list",
        "has and size method",
        "ternary",
        "all",
        "exists",
        "exists_one",
        "matches",
        "index and plus",
        "nested all",
        "arithmetic",
    ],
)
def test_supported_rules_evaluate_like_cel(rule: str, value: Any, expected: bool) -> None:
    assert _cel.evaluate(rule, value) is expected


def test_old_self_is_available_only_when_given() -> None:
    assert _cel.evaluate("self == oldSelf", "a", "a") is True
    with pytest.raises(_cel.Unsupported, match="oldSelf"):
        _cel.evaluate("self == oldSelf", "a")


def test_a_missing_field_is_an_evaluation_error() -> None:
    with pytest.raises(_cel.EvalError, match="no such key: b"):
        _cel.evaluate("self.b == 1", {"a": 1})


@pytest.mark.parametrize(
    "rule",
    ["self.map(x, x)", "self.a.lowerAscii() == 'a'", "duration(self) > duration('1s')", "self ~ 1"],
    ids=["map macro", "unknown method", "unknown function", "unknown operator"],
)
def test_unsupported_cel_is_reported_not_guessed(rule: str) -> None:
    with pytest.raises(_cel.Unsupported):
        _cel.evaluate(rule, {"a": "A"})

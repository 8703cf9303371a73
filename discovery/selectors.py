"""Kubernetes LabelSelectors: parse and validate, match label sets, render the `labelSelector` string.

Pure: no I/O, no clock. Called by `policy.py` (one `Selector` per entry of `spec.selectors`) and by anyone
who needs the query string for a single selector. Validation follows Kubernetes (`metav1` LabelSelector
rules, label key and value syntax); this module never guesses: a selector with any problem is returned as
`InvalidSelector` naming the field, and whoever holds one must treat it as selecting nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Iterable, Mapping

# Kubernetes' syntax (k8s.io/apimachinery/pkg/util/validation): a qualified name is an optional DNS
# subdomain prefix and '/', then a name part; a label value is empty or a name part.
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MAX = 63
_PREFIX_MAX = 253
_NAME_SYNTAX = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)


class Operator(enum.StrEnum):
    """The four set-based operators a LabelSelector accepts, spelled as in the Kubernetes API."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


# Rendering and sorting order; also the order the operators are listed in error messages.
_OPERATOR_RANK = {op: rank for rank, op in enumerate(Operator)}
_NEEDS_VALUES = frozenset({Operator.IN, Operator.NOT_IN})


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One validated requirement: `key <operator> values` (values sorted, deduplicated)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: NotIn and DoesNotExist also match when the key is absent."""
        if self.operator is Operator.EXISTS:
            return self.key in labels
        if self.operator is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.operator is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values

    def render(self) -> str:
        """In `labelSelector` syntax: `k=v`, `k in (a,b)`, `k!=v`, `k notin (a,b)`, `k`, `!k`."""
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if len(self.values) == 1:
            sign = "=" if self.operator is Operator.IN else "!="
            return f"{self.key}{sign}{self.values[0]}"
        word = "in" if self.operator is Operator.IN else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"

    def _sort_key(self) -> tuple[str, int, tuple[str, ...]]:
        return (self.key, _OPERATOR_RANK[self.operator], self.values)


@dataclasses.dataclass(frozen=True)
class Selector:
    """A valid, non-empty LabelSelector: all requirements must match (AND).

    `index` is the selector's 0-based position in `spec.selectors`, the same number the field paths
    (`selectors[1]`) and decision messages ("matched selector 1") use.
    """

    index: int
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def render(self) -> str:
        """The `labelSelector` query string, deterministic: requirements sorted by key, values sorted."""
        return ",".join(requirement.render() for requirement in self.requirements)

    def __str__(self) -> str:
        return self.render()


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a selector: the field path (`selectors[1].matchExpressions[0].values`) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclasses.dataclass(frozen=True)
class InvalidSelector:
    """A selector that failed validation. It selects nothing; `problems` lists every defect found."""

    index: int
    problems: tuple[Problem, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Always False: an invalid selector fails closed."""
        return False

    @property
    def message(self) -> str:
        return f"selector {self.index} is invalid and selects nothing: " + "; ".join(map(str, self.problems))

    def __str__(self) -> str:
        return self.message


ParsedSelector = Selector | InvalidSelector


def validate_label_key(key: object) -> str | None:
    """None when `key` is a valid label key (qualified name), else the reason, worded like Kubernetes."""
    if not isinstance(key, str):
        return f"must be a string, not {type(key).__name__}"
    parts = key.split("/")
    if len(parts) > 2:
        return "a label key is an optional DNS subdomain prefix and '/', then a name: at most one '/'"
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > _PREFIX_MAX:
            return f"prefix part must be no more than {_PREFIX_MAX} characters"
        if not _DNS1123_SUBDOMAIN.match(prefix):
            return (
                "prefix part must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, "
                "'-' or '.', starting and ending with an alphanumeric character"
            )
    else:
        name = parts[0]
    if not name:
        return "name part must be non-empty"
    if len(name) > _NAME_MAX:
        return f"name part must be no more than {_NAME_MAX} characters"
    if not _NAME_PART.match(name):
        return f"name part {_NAME_SYNTAX}"
    return None


def validate_label_value(value: object) -> str | None:
    """None when `value` is a valid label value (empty allowed), else the reason, worded like Kubernetes."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > _NAME_MAX:
        return f"must be no more than {_NAME_MAX} characters"
    if value and not _NAME_PART.match(value):
        return f"must be empty or {_NAME_SYNTAX.removeprefix('must ')}"
    return None


def parse_selector(raw: object, *, index: int) -> ParsedSelector:
    """Validate one LabelSelector in its JSON form (`matchLabels`, `matchExpressions`) and compile it.

    Returns `Selector` when valid, else `InvalidSelector` listing every problem with its field path under
    `selectors[<index>]`. Never raises for bad input. An empty selector (`{}`, or both fields empty) is
    invalid here although Kubernetes reads it as "everything": see `policy.py` for why we fail closed.
    `matchLabels` entries become `In` requirements with one value, as in Kubernetes.
    """
    path = f"selectors[{index}]"
    if not isinstance(raw, Mapping):
        return InvalidSelector(index, (Problem(path, "must be an object (a LabelSelector)"),))
    problems: list[Problem] = []
    requirements: set[Requirement] = set()
    for field in sorted(set(raw) - {"matchLabels", "matchExpressions"}, key=str):
        problems.append(Problem(f"{path}.{field}", "unknown field; use matchLabels or matchExpressions"))
    match_labels = raw.get("matchLabels")
    if match_labels is not None and not isinstance(match_labels, Mapping):
        problems.append(Problem(f"{path}.matchLabels", "must be an object of label key to value"))
    elif match_labels:
        for key, value in match_labels.items():
            shown = json.dumps(key) if isinstance(key, str) else repr(key)
            field = f"{path}.matchLabels[{shown}]"
            key_problem = validate_label_key(key)
            value_problem = validate_label_value(value)
            if key_problem:
                problems.append(Problem(field, f"invalid label key: {key_problem}"))
            if value_problem:
                problems.append(Problem(field, f"invalid label value {value!r}: {value_problem}"))
            if not key_problem and not value_problem:
                requirements.add(Requirement(key, Operator.IN, (value,)))
    expressions = raw.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        problems.append(Problem(f"{path}.matchExpressions", "must be a list of requirements"))
    elif expressions:
        for position, expression in enumerate(expressions):
            parsed = _parse_requirement(expression, path=f"{path}.matchExpressions[{position}]")
            if isinstance(parsed, Requirement):
                requirements.add(parsed)
            else:
                problems.extend(parsed)
    if not problems and not requirements:
        problems.append(
            Problem(
                path,
                "empty selector refused: Kubernetes reads it as every namespace; to mean that, write "
                "matchExpressions: [{key: kubernetes.io/metadata.name, operator: Exists}]",
            )
        )
    if problems:
        return InvalidSelector(index, tuple(problems))
    return Selector(index, tuple(sorted(requirements, key=Requirement._sort_key)))


def parse_selectors(raw: Iterable[object]) -> tuple[ParsedSelector, ...]:
    """Parse `spec.selectors` in order; each entry independently (one bad entry never hides the others)."""
    return tuple(parse_selector(entry, index=index) for index, entry in enumerate(raw))


def _parse_requirement(raw: object, *, path: str) -> Requirement | list[Problem]:
    if not isinstance(raw, Mapping):
        return [Problem(path, "must be an object with key, operator and values")]
    problems = [
        Problem(f"{path}.{field}", "unknown field; use key, operator and values")
        for field in sorted(set(raw) - {"key", "operator", "values"}, key=str)
    ]
    key = raw.get("key")
    if key is None:
        problems.append(Problem(f"{path}.key", "required"))
    elif key_problem := validate_label_key(key):
        problems.append(Problem(f"{path}.key", f"invalid label key {key!r}: {key_problem}"))
    operator: Operator | None = None
    raw_operator = raw.get("operator")
    if raw_operator is None:
        problems.append(Problem(f"{path}.operator", "required"))
    elif not isinstance(raw_operator, str) or raw_operator not in _OPERATOR_RANK:
        allowed = ", ".join(op.value for op in Operator)
        problems.append(Problem(f"{path}.operator", f"{raw_operator!r} is not one of {allowed}"))
    else:
        operator = Operator(raw_operator)
    raw_values = raw.get("values")
    values: list[str] = []
    if raw_values is not None and not isinstance(raw_values, list):
        problems.append(Problem(f"{path}.values", "must be a list of label values"))
    elif raw_values:
        for position, value in enumerate(raw_values):
            if value_problem := validate_label_value(value):
                problems.append(
                    Problem(f"{path}.values[{position}]", f"invalid label value {value!r}: {value_problem}")
                )
            else:
                values.append(value)
    if operator in _NEEDS_VALUES and not raw_values and isinstance(raw_values, list | None):
        problems.append(Problem(f"{path}.values", f"must be non-empty when operator is {operator}"))
    elif operator is not None and operator not in _NEEDS_VALUES and raw_values:
        problems.append(Problem(f"{path}.values", f"must be empty when operator is {operator}"))
    if problems or operator is None or not isinstance(key, str):
        return problems
    return Requirement(key, operator, tuple(sorted(set(values))))

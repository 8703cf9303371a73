"""Label and field selectors for the loopback API: parse the query-string syntax and match objects.

Pure: no I/O. Called by the loopback server for list and watch requests. Bad syntax raises
`SelectorError` with a message shaped like the real API server's 400 body; it never guesses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from toolhive.testing import _validation


class SelectorError(ValueError):
    """A selector string that the real API server would answer with 400 BadRequest."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number = int(value or "")
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.op == "gt" else number < limit


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:  # pragma: no cover - the pattern accepts any non-space character
            raise SelectorError(f"unable to parse requirement: unexpected character at {pos}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _check_key(key: str) -> None:
    problems = _validation.qualified_name_errors(key)
    if problems:
        raise SelectorError(f'unable to parse requirement: key: Invalid value: "{key}": {problems[0]}')


def _check_value(key: str, value: str) -> None:
    problems = _validation.label_value_errors(value)
    if problems:
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": {problems[0]}'
        )


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`; raise `SelectorError` on bad syntax."""
    if not text or not text.strip():
        return LabelSelector()
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_ident(what: str) -> str:
        nonlocal i
        if i >= len(toks) or toks[i] in ("!=", "==", "=", "!", "(", ")", ","):
            found = toks[i] if i < len(toks) else ""
            raise SelectorError(f"unable to parse requirement: found '{found}', expected: {what}")
        tok = toks[i]
        i += 1
        return tok

    while True:
        if i < len(toks) and toks[i] == "!":
            i += 1
            key = expect_ident("identifier after '!'")
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            key = expect_ident("identifier")
            if ">" in key or "<" in key:
                sym = ">" if ">" in key else "<"
                key, _, limit = key.partition(sym)
                if not limit and i < len(toks):
                    limit = expect_ident("integer value")
                _check_key(key)
                if not re.fullmatch(r"-?\d+", limit):
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, "
                        f"the value must be an integer, found '{limit}'"
                    )
                reqs.append(Requirement(key, "gt" if sym == ">" else "lt", (limit,)))
            else:
                _check_key(key)
                op = toks[i] if i < len(toks) else ","
                if op == ",":
                    reqs.append(Requirement(key, "exists"))
                elif op in ("=", "==", "!="):
                    i += 1
                    value = ""
                    if i < len(toks) and toks[i] not in (",", "(", ")", "!", "=", "==", "!="):
                        value = toks[i]
                        i += 1
                    elif i < len(toks) and toks[i] != ",":
                        raise SelectorError(
                            f"unable to parse requirement: found '{toks[i]}', expected: value"
                        )
                    _check_value(key, value)
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
                elif op in ("in", "notin"):
                    i += 1
                    if i >= len(toks) or toks[i] != "(":
                        raise SelectorError("unable to parse requirement: found '', expected: '('")
                    i += 1
                    values: list[str] = []
                    while True:
                        if i >= len(toks):
                            raise SelectorError("unable to parse requirement: found '', expected: ')'")
                        if toks[i] == ")":
                            i += 1
                            break
                        if toks[i] == ",":
                            i += 1
                            continue
                        if toks[i] in ("(", "!", "=", "==", "!="):
                            raise SelectorError(
                                f"unable to parse requirement: found '{toks[i]}', expected: ',', ')' or identifier"  # noqa: E501
                            )
                        _check_value(key, toks[i])
                        values.append(toks[i])
                        i += 1
                    if not values:
                        raise SelectorError(
                            "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"  # noqa: E501
                        )
                    reqs.append(Requirement(key, op, tuple(sorted(set(values)))))
                else:
                    raise SelectorError(
                        f"unable to parse requirement: found '{op}', expected: '=', '!=', '==', 'in', notin'"
                    )
        if i >= len(toks):
            break
        if toks[i] != ",":
            raise SelectorError(f"unable to parse requirement: found '{toks[i]}', expected: ','")
        i += 1
        if i >= len(toks):
            raise SelectorError("unable to parse requirement: found '', expected: identifier")
    return LabelSelector(tuple(reqs))


FieldGetter = Callable[[Mapping[str, Any]], str]


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, equal, value in self.terms:
            actual = field_value(obj, field)
            if (actual == value) != equal:
                return False
        return True

    def exact(self, field: str) -> str | None:
        """The value an equality term pins `field` to, if any (lets lists skip the scan)."""
        for name, equal, value in self.terms:
            if name == field and equal:
                return value
        return None


def field_value(obj: Mapping[str, Any], field: str) -> str:
    node: Any = obj
    for part in field.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def parse_field_selector(text: str | None, *, allowed: frozenset[str], crd: bool) -> FieldSelector:
    """Parse `metadata.name=x,metadata.namespace!=y`; only `allowed` fields, like the real server."""
    if not text or not text.strip():
        return FieldSelector()
    terms: list[tuple[str, bool, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            if crd:
                known = ", ".join(f'"{f}"' for f in sorted(allowed))
                raise SelectorError(f'"{field}" is not a known field selector: only {known}')
            raise SelectorError(f"field label not supported: {field}")
        terms.append((field, op != "!=", value))
    return FieldSelector(tuple(terms))

"""A small subset of CEL for CRD `x-kubernetes-validations` rules, evaluated like the API server does.

Pure: no I/O. Called by `_schema.validate`. Supported: literals (int, double, string, bool, null, lists),
`self`/`oldSelf`, field access, indexing, `! - * / % + - < <= > >= == != in && || ?:`, `has()`,
`size()`, `int()`, `string()`, and the methods `size startsWith endsWith contains matches all exists
exists_one`. Anything else raises `Unsupported`, and the caller skips that rule rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class Unsupported(Exception):
    """The rule uses CEL this evaluator does not know."""


class EvalError(Exception):
    """A runtime error (no such key, type mismatch): the API server reports the rule as failed."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+|\d+)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))"
)
ABSENT: Any = object()  # "no oldSelf": a create, or a value new in this update
Node = Callable[[dict[str, Any]], Any]


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"unexpected input at {pos}: {text[pos : pos + 10]!r}")
        pos = m.end()
        if m.group("num") is not None:
            raw = m.group("num")
            out.append(("lit", float(raw) if "." in raw else int(raw)))
        elif m.group("str") is not None:
            out.append(("lit", bytes(m.group("str")[1:-1], "utf-8").decode("unicode_escape")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            word = m.group("id")
            literals = {"true": True, "false": False, "null": None}
            out.append(("lit", literals[word]) if word in literals else ("id", word))
        while pos < len(text) and text[pos].isspace():
            pos += 1
    out.append(("end", None))
    return out


def _truthy(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvalError(f"no matching overload: expected bool, got {type(value).__name__}")
    return value


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise EvalError("no matching overload for size")


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, Any]:
        tok = self.toks[self.i]
        if value is not None and tok != ("op", value):
            raise Unsupported(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.ternary()
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return node

    def ternary(self) -> Node:
        cond = self.binary(0)
        if self.peek() == ("op", "?"):
            self.take()
            then = self.ternary()
            self.take(":")
            other = self.ternary()
            return lambda env: then(env) if _truthy(cond(env)) else other(env)
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", "<=", ">", ">=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, value = self.peek()
            op = value if kind == "op" else ("in" if (kind, value) == ("id", "in") else None)
            if op not in self._LEVELS[level]:
                return left
            self.take()
            right = self.binary(level + 1)
            left = self._combine(op, left, right)

    @staticmethod
    def _combine(op: str, left: Node, right: Node) -> Node:
        if op == "||":
            return lambda env: _truthy(left(env)) or _truthy(right(env))
        if op == "&&":
            return lambda env: _truthy(left(env)) and _truthy(right(env))
        if op == "in":
            return lambda env: left(env) in right(env)

        def arith(env: dict[str, Any]) -> Any:
            a, b = left(env), right(env)
            try:
                if op == "==":
                    return bool(a == b)
                if op == "!=":
                    return bool(a != b)
                if op == "<":
                    return bool(a < b)
                if op == "<=":
                    return bool(a <= b)
                if op == ">":
                    return bool(a > b)
                if op == ">=":
                    return bool(a >= b)
                if op == "+":
                    return a + b
                if op == "-":
                    return a - b
                if op == "*":
                    return a * b
                if op == "/":
                    return a // b if isinstance(a, int) and isinstance(b, int) else a / b
                return a % b
            except (TypeError, ZeroDivisionError) as exc:
                raise EvalError(str(exc)) from None

        return arith

    def unary(self) -> Node:
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.unary()
            return lambda env: not _truthy(inner(env))
        if self.peek() == ("op", "-"):
            self.take()
            inner = self.unary()
            return lambda env: -inner(env)
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek() == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "id":
                    raise Unsupported("expected a field name")
                node = self._method(node, name) if self.peek() == ("op", "(") else self._field(node, name)
            elif self.peek() == ("op", "["):
                self.take()
                index = self.ternary()
                self.take("]")
                node = self._index(node, index)
            else:
                return node

    @staticmethod
    def _field(node: Node, name: str) -> Node:
        def get(env: dict[str, Any]) -> Any:
            obj = node(env)
            if isinstance(obj, Mapping):
                if name not in obj:
                    raise EvalError(f"no such key: {name}")
                return obj[name]
            raise EvalError(f"no such key: {name}")

        get.field = (node, name)  # type: ignore[attr-defined]
        return get

    @staticmethod
    def _index(node: Node, index: Node) -> Node:
        def get(env: dict[str, Any]) -> Any:
            obj, key = node(env), index(env)
            try:
                return obj[key]
            except (KeyError, IndexError, TypeError):
                raise EvalError(f"no such key: {key}") from None

        return get

    def _args(self) -> list[Node]:
        self.take("(")
        args: list[Node] = []
        while self.peek() != ("op", ")"):
            args.append(self.ternary())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        return args

    def _method(self, target: Node, name: str) -> Node:
        if name in ("all", "exists", "exists_one"):
            self.take("(")
            kind, var = self.take()
            if kind != "id":
                raise Unsupported("macro variable expected")
            self.take(",")
            body = self.ternary()
            self.take(")")

            def macro(env: dict[str, Any]) -> Any:
                items = target(env)
                values = list(items.keys()) if isinstance(items, Mapping) else list(items)
                results = [_truthy(body({**env, var: v})) for v in values]
                if name == "all":
                    return all(results)
                if name == "exists":
                    return any(results)
                return results.count(True) == 1

            return macro
        args = self._args()
        methods: dict[str, Callable[..., Any]] = {
            "size": _size,
            "startsWith": lambda s, p: s.startswith(p),
            "endsWith": lambda s, p: s.endswith(p),
            "contains": lambda s, p: p in s,
            "matches": lambda s, p: re.search(p, s) is not None,
        }
        if name not in methods:
            raise Unsupported(f"method {name}()")
        fn = methods[name]
        return lambda env: fn(target(env), *(a(env) for a in args))

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "lit":
            return lambda env: value
        if kind == "op" and value == "(":
            inner = self.ternary()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items: list[Node] = []
            while self.peek() != ("op", "]"):
                items.append(self.ternary())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("]")
            return lambda env: [item(env) for item in items]
        if kind == "id":
            if self.peek() == ("op", "("):
                return self._function(value)
            name = value
            return lambda env: _lookup(env, name)
        raise Unsupported(f"unexpected {value!r}")

    def _function(self, name: str) -> Node:
        if name == "has":
            self.take("(")
            arg = self.member()
            self.take(")")
            field = getattr(arg, "field", None)
            if field is None:
                raise Unsupported("has() needs a field selection")
            parent, key = field
            return lambda env: isinstance(obj := parent(env), Mapping) and key in obj
        args = self._args()
        functions: dict[str, Callable[..., Any]] = {"size": _size, "int": int, "string": str, "double": float}
        if name not in functions:
            raise Unsupported(f"function {name}()")
        fn = functions[name]
        return lambda env: fn(*(a(env) for a in args))


def _lookup(env: dict[str, Any], name: str) -> Any:
    if name not in env:
        raise Unsupported(f"undeclared reference to {name!r}")
    return env[name]


def compile_rule(rule: str) -> Node:
    """Parse a rule once; raises Unsupported for CEL outside the subset."""
    return _Parser(rule).parse()


def evaluate(rule: str, value: Any, old: Any = ABSENT) -> bool:
    """Evaluate `rule` with `self` (and `oldSelf` when given); EvalError/Unsupported propagate."""
    env: dict[str, Any] = {"self": value}
    if old is not ABSENT:
        env["oldSelf"] = old
    return _truthy(compile_rule(rule)(env))

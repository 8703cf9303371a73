"""Patch formats of the loopback API: JSON merge patch, JSON patch and strategic merge patch.

Pure: no I/O. Called by the loopback store; every function returns a new document and never mutates
its inputs. `PatchError(code, message)` carries the status the real server answers with (400 for an
undecodable patch, 422 for a JSON patch that fails to apply, including a failed `test`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_ATOMS = frozenset({str, int, float, bool, type(None)})


def clone(value: Any) -> Any:
    """A deep copy of a JSON document: what `copy.deepcopy` gives, several times faster.

    No memo: a JSON tree has no shared mutable parts that must stay shared. Other types go to deepcopy.
    """
    kind = type(value)
    if kind is dict:
        return {key: clone(item) for key, item in value.items()}
    if kind is list:
        return [clone(item) for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


class PatchError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- RFC 7386 JSON merge patch -------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return clone(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 JSON patch -------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(422, f'JSON pointer must start with "/": {path!r}')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(422, f"invalid array index: {token}")
    idx = int(token)
    if idx > len(container) or (not for_add and idx == len(container)):
        raise PatchError(422, f"array index out of bounds: {idx}")
    return idx


def _parent(doc: Any, parts: list[str], op: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                raise PatchError(
                    422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}"
                )
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, for_add=False)]
        else:
            raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return node


def _get(doc: Any, parts: list[str], op: str) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")


def _remove(doc: Any, parts: list[str], op: str) -> Any:
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_add=False))
    raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")


def _add(doc: Any, parts: list[str], value: Any, op: str) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise PatchError(422, f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch; a failed `test` or a missing path raises PatchError(422)."""
    if not isinstance(operations, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = clone(target)
    for raw in operations:
        if not isinstance(raw, Mapping) or "op" not in raw or "path" not in raw:
            raise PatchError(400, "invalid JSON patch operation: an op and a path are required")
        op = raw["op"]
        parts = _pointer(str(raw["path"]))
        if op in ("add", "replace", "test") and "value" not in raw:
            raise PatchError(400, f"invalid JSON patch operation {op}: missing value")
        if op == "add":
            doc = _add(doc, parts, clone(raw["value"]), op)
        elif op == "remove":
            if not parts:
                raise PatchError(422, "remove operation does not apply: cannot remove the root")
            _remove(doc, parts, op)
        elif op == "replace":
            if parts:
                _get(doc, parts, op)
                parent = _parent(doc, parts, op)
                if isinstance(parent, dict):
                    parent[parts[-1]] = clone(raw["value"])
                else:
                    parent[_index(parent, parts[-1], for_add=False)] = clone(raw["value"])
            else:
                doc = clone(raw["value"])
        elif op in ("move", "copy"):
            if "from" not in raw:
                raise PatchError(400, f"invalid JSON patch operation {op}: missing from")
            source = _pointer(str(raw["from"]))
            value = _remove(doc, source, op) if op == "move" else clone(_get(doc, source, op))
            doc = _add(doc, parts, value, op)
        elif op == "test":
            try:
                actual = _get(doc, parts, op)
            except PatchError as exc:
                raise PatchError(422, f"testing value {raw['path']} failed: {exc.message}") from None
            if actual != raw["value"] or type(actual) is not type(raw["value"]):
                raise PatchError(422, f"testing value {raw['path']} failed: test failed")
        else:
            raise PatchError(400, f"Unexpected kind: {op}")
    return doc


# --- strategic merge patch -----------------------------------------------------------------------
# A `Strategy` tree says, per field, which lists merge by key (and which primitive lists merge as
# sets) for the built-in kinds; everything else follows merge-patch rules (lists replaced).

Strategy = Mapping[str, Any]  # field -> ("key", merge_key, child) | ("set",) | child Strategy


def _keyed(key: str, child: Strategy | None = None) -> tuple[str, str, Strategy]:
    return ("key", key, child or {})


CONTAINER: Strategy = {
    "env": _keyed("name"),
    "ports": _keyed("containerPort"),
    "volumeMounts": _keyed("mountPath"),
    "volumeDevices": _keyed("devicePath"),
}
POD_SPEC: Strategy = {
    "containers": _keyed("name", CONTAINER),
    "initContainers": _keyed("name", CONTAINER),
    "ephemeralContainers": _keyed("name", CONTAINER),
    "volumes": _keyed("name"),
    "imagePullSecrets": _keyed("name"),
    "hostAliases": _keyed("ip"),
}
CONDITIONS: Strategy = {"conditions": _keyed("type")}
METADATA: Strategy = {"finalizers": ("set",), "ownerReferences": _keyed("uid")}
POD: Strategy = {"metadata": METADATA, "spec": POD_SPEC, "status": CONDITIONS}
WORKLOAD: Strategy = {
    "metadata": METADATA,
    "spec": {"template": {"metadata": METADATA, "spec": POD_SPEC}},
    "status": CONDITIONS,
}
SERVICE: Strategy = {"metadata": METADATA, "spec": {"ports": _keyed("port")}, "status": CONDITIONS}
NAMESPACE: Strategy = {"metadata": METADATA, "spec": {"finalizers": ("set",)}, "status": CONDITIONS}
SERVICE_ACCOUNT: Strategy = {"metadata": METADATA, "secrets": _keyed("name")}
DEFAULT: Strategy = {"metadata": METADATA}


_NOT_MAPS = frozenset({str, int, float, bool, list, type(None)})


def _is_map(value: Any) -> bool:
    # Exact types first: an ABC isinstance check costs more than the merge step it guards.
    kind = type(value)
    return kind is dict or (kind not in _NOT_MAPS and isinstance(value, Mapping))


def strategic_merge_patch(target: Any, patch: Any, strategy: Strategy) -> Any:
    """Apply a strategic merge patch: keyed lists merge item by item; `$patch: delete|replace` honoured."""
    if not _is_map(patch):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result: dict[str, Any] = dict(target) if _is_map(target) else {}
    for key, value in patch.items():
        if key.startswith("$"):  # directives (checked only for keys that can be one)
            if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                current = result.get(field)
                if isinstance(current, list) and isinstance(value, list):
                    result[field] = [v for v in current if v not in value]
                continue
        if value is None:
            result.pop(key, None)
            continue
        if type(value) in _ATOMS:  # a scalar replaces whatever was there
            result[key] = value
            continue
        rule = strategy.get(key)
        current = result.get(key)
        if isinstance(rule, tuple) and isinstance(value, list):
            if rule[0] == "set":
                merged = list(current) if isinstance(current, list) else []
                merged.extend(v for v in value if v not in merged)
                result[key] = merged
            else:
                result[key] = _merge_keyed(
                    current if isinstance(current, list) else [], value, rule[1], rule[2]
                )
        elif _is_map(value):
            child = rule if rule is not None and _is_map(rule) else {}
            merged_value = strategic_merge_patch(current, value, child)
            if merged_value is None:
                result.pop(key, None)
            else:
                result[key] = merged_value
        else:
            result[key] = clone(value)
    return result


def _merge_keyed(current: list[Any], patch: list[Any], key: str, child: Strategy) -> list[Any]:
    if any(_is_map(p) and p.get("$patch") == "replace" for p in patch):
        return [clone(p) for p in patch if not (_is_map(p) and "$patch" in p)]
    out = list(current)
    for item in patch:
        if not _is_map(item) or key not in item:
            raise PatchError(400, f"map: {item} does not contain declared merge key: {key}")
        position = next(
            (i for i, existing in enumerate(out) if _is_map(existing) and existing.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                out.pop(position)
            continue
        if position is None:
            out.append({k: clone(v) for k, v in item.items() if k != "$patch"})
        else:
            out[position] = strategic_merge_patch(out[position], item, child)
    return out

"""Field ownership (`metadata.managedFields`) and server-side apply, approximated.

Pure: no I/O. Called by the loopback store. An object's fields are its leaf paths; lists with a
merge key (built-in patch keys, or CRD `x-kubernetes-list-type: map`) contribute one path per item
key, `set` lists one path per value, other lists are atomic leaves. Each manager (manager name +
operation + subresource) owns a set of paths, recorded as FieldsV1 in `managedFields`:
  - apply (manager M, config A): conflict (409) when A sets a path another manager owns to a
    different value, unless `force` (ownership moves to M); paths M applied before but omits now
    are removed from the object unless another manager owns them; A is then merged in;
  - update/patch (manager U): paths whose value changed move to U; removed paths leave every set.
It never tracks ownership of intermediate maps separately, and never versions field sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from toolhive.testing import _patches

Path = tuple[str, ...]
_MISSING = object()
_IDENTITY = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generateName",
    }
)


def _item_key(key: str, item: Mapping[str, Any]) -> str:
    return "k:" + json.dumps({key: item.get(key)}, sort_keys=True, separators=(",", ":"))


def paths(value: Any, strategy: _patches.Strategy, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(value, Mapping):
        return {prefix} if prefix else out
    if not value:
        return {prefix} if prefix else out
    for key, child in value.items():
        rule = strategy.get(key)
        here = (*prefix, key)
        if isinstance(child, list) and isinstance(rule, tuple) and rule[0] == "key":
            for item in child:
                if isinstance(item, Mapping) and rule[1] in item:
                    item_path = (*here, _item_key(rule[1], item))
                    out |= paths(item, rule[2], item_path) or {item_path}
        elif isinstance(child, list) and isinstance(rule, tuple) and rule[0] == "set":
            out.update((*here, "v:" + json.dumps(v, sort_keys=True)) for v in child)
        elif isinstance(child, Mapping) and child:
            out |= paths(child, rule if isinstance(rule, Mapping) else {}, here)
        else:
            out.add(here)
    return out


def object_paths(obj: Mapping[str, Any], strategy: _patches.Strategy, *, status: bool) -> set[Path]:
    """Owned paths of an object: status only (status writes) or everything but identity and status."""
    if status:
        return paths({"status": obj.get("status")}, strategy) if obj.get("status") else set()
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IDENTITY}
    if meta:
        body["metadata"] = meta
    return paths(body, strategy)


def get(obj: Any, path: Path) -> Any:
    node = obj
    for part in path:
        if isinstance(node, list):
            if part.startswith("k:"):
                want = json.loads(part[2:])
                node = next(
                    (
                        i
                        for i in node
                        if isinstance(i, Mapping) and all(i.get(k) == v for k, v in want.items())
                    ),
                    _MISSING,
                )
            elif part.startswith("v:"):
                value = json.loads(part[2:])
                node = value if value in node else _MISSING
            else:
                return _MISSING
        elif isinstance(node, Mapping):
            node = node.get(part, _MISSING)
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def remove(obj: Any, path: Path) -> None:
    """Remove `path` from `obj` in place; empty parents are left for the caller to tidy."""
    if not path:
        return
    parent = get(obj, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list):
        if last.startswith("k:"):
            want = json.loads(last[2:])
            parent[:] = [
                i
                for i in parent
                if not (isinstance(i, Mapping) and all(i.get(k) == v for k, v in want.items()))
            ]
        elif last.startswith("v:"):
            value = json.loads(last[2:])
            parent[:] = [i for i in parent if i != value]


def encode(owned: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(owned):
        node = root
        for part in path:
            key = part if part.startswith(("k:", "v:")) else "f:" + part
            node = node.setdefault(key, {})
    return root


def decode(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, child in fields.items():
        if key == ".":
            continue
        part = key[2:] if key.startswith("f:") else key
        here = (*prefix, part)
        if isinstance(child, Mapping) and any(k != "." for k in child):
            out |= decode(child, here)
        else:
            out.add(here)
    return out


def _entry_id(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        super().__init__("apply conflict")
        self.conflicts = conflicts


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part[2:]}]" if part.startswith(("k:", "v:")) else f".{part}"
    return out


def apply(
    current: dict[str, Any] | None,
    config: Mapping[str, Any],
    *,
    manager: str,
    force: bool,
    strategy: _patches.Strategy,
    status: bool,
) -> dict[str, Any]:
    """Merge an apply configuration into `current` (or build a new object), honouring ownership."""
    managed = list((current or {}).get("metadata", {}).get("managedFields") or [])
    applied = object_paths(config, strategy, status=status)
    me = (manager, "Apply", "status" if status else "")
    result: dict[str, Any] = _patches.clone(current) if current is not None else {}
    if current is not None:
        conflicts: list[tuple[str, Path]] = []
        for entry in managed:
            if _entry_id(entry) == me:
                continue
            theirs = decode(entry.get("fieldsV1") or {})
            for path in sorted(applied & theirs):
                if get(config, path) != get(current, path):
                    conflicts.append((entry.get("manager", ""), path))
        if conflicts and not force:
            raise ApplyConflict(conflicts)
        mine_before: set[Path] = set()
        others: set[Path] = set()
        for entry in managed:
            owned = decode(entry.get("fieldsV1") or {})
            if _entry_id(entry) == me:
                mine_before = owned
            else:
                others |= owned
        for path in sorted(mine_before - applied - others, key=len, reverse=True):
            remove(result, path)
    merged = _patches.strategic_merge_patch(result, config, strategy)
    assert isinstance(merged, dict)
    return merged


def record(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    operation: str,
    api_version: str,
    strategy: _patches.Strategy,
    status: bool,
    now: str,
    applied: Mapping[str, Any] | None = None,
) -> None:
    """Update `new.metadata.managedFields` for a write by `manager` (in place)."""
    entries = [dict(e) for e in (old or {}).get("metadata", {}).get("managedFields") or []]
    old_paths = object_paths(old, strategy, status=status) if old else set()
    new_paths = object_paths(new, strategy, status=status)
    if applied is not None:
        mine = object_paths(applied, strategy, status=status) & new_paths
    else:
        mine = {p for p in new_paths if old is None or get(old, p) != get(new, p)}
    me = (manager, operation, "status" if status else "")
    removed = old_paths - new_paths
    kept: list[dict[str, Any]] = []
    found = False
    for entry in entries:
        owned = decode(entry.get("fieldsV1") or {})
        if _entry_id(entry) == me:
            found = True
            owned = (owned - removed) | mine if operation == "Update" else mine
        elif (entry.get("subresource", "") == "status") == status:
            owned = owned - removed - (mine if operation == "Update" or applied is not None else set())
            if applied is not None:
                # Forced or equal-valued fields: an apply shares equal values, takes the rest.
                owned |= {
                    p
                    for p in decode(entry.get("fieldsV1") or {}) & mine
                    if old and get(old, p) == get(new, p)
                }
        if not owned:
            continue
        fields = encode(owned)
        if fields != entry.get("fieldsV1") or _entry_id(entry) == me:
            entry["fieldsV1"] = fields
            entry["time"] = now
        kept.append(entry)
    if not found and mine:
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(mine),
        }
        if status:
            entry["subresource"] = "status"
        kept.append(entry)
    meta = new.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)

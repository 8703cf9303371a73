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

import functools
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

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
    # = "k:" + json.dumps({key: value}, sort_keys=True, separators=(",", ":")), built without the dict.
    value = item.get(key)
    if type(value) is str:
        return _string_item_key(key, value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"k:{{{json.dumps(key)}:{text}}}"


@functools.lru_cache(maxsize=16384)
def _string_item_key(key: str, value: str) -> str:
    # The same container, env and volume names come back on every write of every object of a shape.
    return f"k:{{{json.dumps(key)}:{json.dumps(value)}}}"


_NOT_MAPS = frozenset({str, int, float, bool, list, tuple, type(None)})


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    kind = type(value)  # the exact types first: an ABC isinstance check is slow for every leaf
    return kind is dict or (kind not in _NOT_MAPS and isinstance(value, Mapping))


def paths(value: Any, strategy: _patches.Strategy, prefix: Path = ()) -> set[Path]:
    if not _is_map(value) or not value:
        return {prefix} if prefix else set()
    out: set[Path] = set()
    _collect(value, strategy, prefix, out)
    return out


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NO_RULES: _patches.Strategy = {}


def _collect(value: Mapping[str, Any], strategy: _patches.Strategy, prefix: Path, out: set[Path]) -> None:
    """`paths` of a non-empty map, added to `out` (one set for the whole walk, not one per level)."""
    rule_of = strategy.get
    add = out.add
    for key, child in value.items():
        kind = type(child)  # the common JSON types first, by exact type: this walk runs for every write
        if kind in _SCALARS:
            add((*prefix, key))
            continue
        if kind is dict:
            if child:
                rule = rule_of(key)
                _collect(
                    child, rule if rule is not None and _is_map(rule) else _NO_RULES, (*prefix, key), out
                )
            else:
                add((*prefix, key))
            continue
        rule = rule_of(key)
        here = (*prefix, key)
        if isinstance(child, list) and isinstance(rule, tuple):
            if rule[0] == "key":
                merge_key = rule[1]
                for item in child:
                    if _is_map(item) and merge_key in item:
                        item_path = (*here, _item_key(merge_key, item))
                        below: set[Path] = set()
                        _collect(item, rule[2], item_path, below)  # `item` has the key: never empty
                        out |= below or {item_path}
                continue
            if rule[0] == "set":
                out.update((*here, "v:" + json.dumps(v, sort_keys=True)) for v in child)
                continue
        if child and _is_map(child):
            _collect(child, rule if _is_map(rule) else {}, here, out)
        else:
            add(here)


def object_paths(obj: Mapping[str, Any], strategy: _patches.Strategy, *, status: bool) -> set[Path]:
    """Owned paths of an object: status only (status writes) or everything but identity and status."""
    if status:
        return paths({"status": obj.get("status")}, strategy) if obj.get("status") else set()
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IDENTITY}
    if meta:
        body["metadata"] = meta
    return paths(body, strategy)


def _view(obj: Mapping[str, Any], *, status: bool) -> Mapping[str, Any]:
    """The part of an object whose `paths` are its `object_paths`."""
    if status:
        return {"status": obj["status"]} if obj.get("status") else {}
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IDENTITY}
    if meta:
        body["metadata"] = meta
    return body


def changes(
    old: Mapping[str, Any], new: Mapping[str, Any], strategy: _patches.Strategy, *, status: bool
) -> tuple[set[Path], set[Path]]:
    """What an update changed, without walking what it left alone: `(changed, removed)` where changed is
    `{p in object_paths(new) if get(old, p) != get(new, p)}` and removed `object_paths(old) -
    object_paths(new)`. Equal subtrees are skipped (compared as JSON text where list merge keys make the
    paths depend on value types: 1 and 1.0 are equal but are different item keys)."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    _diff(_view(old, status=status), _view(new, status=status), strategy, (), (old, new), changed, removed)
    return changed, removed


def _key_paths(key: str, child: Any, strategy: _patches.Strategy, prefix: Path) -> set[Path]:
    """The paths `_collect` gives for one key of a map at `prefix`."""
    out: set[Path] = set()
    _collect({key: child}, strategy, prefix, out)
    return out


def _same_json(a: Any, b: Any) -> bool:
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return False


def _diff(
    before_map: Mapping[str, Any],
    after_map: Mapping[str, Any],
    strategy: _patches.Strategy,
    prefix: Path,
    roots: tuple[Mapping[str, Any], Mapping[str, Any]],
    changed: set[Path],
    removed: set[Path],
) -> None:
    """`changes` below two maps at `prefix` (the maps are what `get` finds at `prefix` in the roots)."""
    old, new = roots
    rule_of = strategy.get
    for key, after in after_map.items():
        before = before_map.get(key, _MISSING)
        if before is _MISSING:  # `get(old, p)` is missing for every path below
            changed.update(p for p in _key_paths(key, after, strategy, prefix) if get(new, p) is not _MISSING)
            continue
        rule = rule_of(key)
        # Without a rule below, paths depend only on keys and which values are maps, which == compares.
        if before == after and (rule is None or _same_json(before, after)):
            continue
        if type(after) is dict and type(before) is dict and after and before:
            below = rule if rule is not None and _is_map(rule) else _NO_RULES
            _diff(before, after, below, (*prefix, key), roots, changed, removed)
            continue
        theirs = _key_paths(key, before, strategy, prefix)
        ours = _key_paths(key, after, strategy, prefix)
        changed.update(p for p in ours if get(old, p) != get(new, p))
        removed |= theirs - ours
    for key, before in before_map.items():
        if key not in after_map:
            removed |= _key_paths(key, before, strategy, prefix)


class PathCache:
    """`object_paths` of objects that are never mutated after the call (stored objects, apply
    configurations) and decoded managedFields entries, remembered by identity: an object's paths as the
    new side of its write are its paths as the old side of the next one, and an entry nobody changed
    keeps its fieldsV1 dict from write to write. Holds a reference to each object, so an id is never
    reused while cached; bounded (oldest forgotten first). One per store (its thread). Callers never
    mutate what it returns."""

    def __init__(self, *, size: int = 8192, encodings: int = 4096) -> None:
        self._size = size
        # (id, id of the strategy or 0, status) -> (object, strategy or None, paths[, canonical])
        # OrderedDict: evicting the oldest of a plain dict (`next(iter(d))`) scans the slots its earlier
        # deletions left behind, so every insertion into a full cache cost O(size).
        self._entries: OrderedDict[tuple[int, int, bool], tuple[Any, ...]] = OrderedDict()
        # (level, the paths through one field there) -> their FieldsV1: objects of one shape (Deployments)
        # own the same paths below `spec` or `metadata.labels`, so they share one encoded dict (never
        # mutated) for it; only the parts that differ (an ownerReference's uid) are encoded again.
        self._encodings_size = encodings
        self._encodings: OrderedDict[tuple[int, frozenset[Path]], dict[str, Any]] = OrderedDict()

    def encode(self, owned: Iterable[Path], *, depth: int = 2, start: int = 0) -> dict[str, Any]:
        """`encode(owned)`, from cached encodings of the fields below the first `depth` levels. Callers
        never mutate the result. (`start`: the paths' parts before it are the same for all of them.)"""
        groups: dict[str, list[Path]] = {}
        for path in owned:
            if len(path) > start:
                groups.setdefault(path[start], []).append(path)
        out: dict[str, Any] = {}
        for part in sorted(groups):
            members = groups[part]
            # Whole paths in the key, not the parts below `part`: no new tuple per path on a hit.
            key = (start, frozenset(members))
            fields = self._encodings.get(key)
            if fields is None:
                if depth > 1:
                    fields = self.encode(members, depth=depth - 1, start=start + 1)
                else:
                    fields = encode([path[start + 1 :] for path in members])
                if len(self._encodings) >= self._encodings_size:
                    self._encodings.popitem(last=False)
                self._encodings[key] = fields
            out[part if part.startswith(("k:", "v:")) else "f:" + part] = fields
        return out

    def object_paths(self, obj: Mapping[str, Any], strategy: _patches.Strategy, *, status: bool) -> set[Path]:
        key = (id(obj), id(strategy), status)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is obj and hit[1] is strategy:
            paths: set[Path] = hit[2]
            return paths
        found = object_paths(obj, strategy, status=status)
        self._remember(key, (obj, strategy, found))
        return found

    def owned(self, fields: Mapping[str, Any]) -> tuple[set[Path], bool]:
        """`decode(fields)` of a stored managedFields entry, and whether `encode` gives `fields` back."""
        key = (id(fields), 0, False)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is fields and hit[1] is None:
            return hit[2], bool(hit[3])
        decoded = decode(fields)
        canonical = self.encode(decoded) == fields
        self._remember(key, (fields, None, decoded, canonical))
        return decoded, canonical

    def _remember(self, key: tuple[int, int, bool], entry: tuple[Any, ...]) -> None:
        if len(self._entries) >= self._size:
            self._entries.popitem(last=False)
        self._entries[key] = entry


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
    """FieldsV1 of a set of paths; each level's keys in the order of their path parts (as sorting the
    paths would give them, at the cost of sorting each level's keys only)."""
    tree: dict[str, Any] = {}
    for path in owned:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return _encode_level(tree)


def _encode_level(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        (part if part.startswith(("k:", "v:")) else "f:" + part): _encode_level(tree[part])
        if tree[part]
        else {}
        for part in sorted(tree)
    }


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


def _owned(fields: Mapping[str, Any]) -> tuple[set[Path], bool]:
    """Uncached `PathCache.owned`."""
    decoded = decode(fields)
    return decoded, encode(decoded) == fields


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
    cache: PathCache | None = None,
) -> dict[str, Any]:
    """Merge an apply configuration into `current` (or build a new object), honouring ownership.

    With `cache`, `config` must not change afterwards (its paths are remembered)."""
    managed = list((current or {}).get("metadata", {}).get("managedFields") or [])
    paths_of = cache.object_paths if cache is not None else object_paths
    owned_of = cache.owned if cache is not None else _owned
    applied = paths_of(config, strategy, status=status)
    me = (manager, "Apply", "status" if status else "")
    result: dict[str, Any] = _patches.clone(current) if current is not None else {}
    if current is not None:
        conflicts: list[tuple[str, Path]] = []
        for entry in managed:
            if _entry_id(entry) == me:
                continue
            theirs = owned_of(entry.get("fieldsV1") or {})[0]
            for path in sorted(applied & theirs):
                if get(config, path) != get(current, path):
                    conflicts.append((entry.get("manager", ""), path))
        if conflicts and not force:
            raise ApplyConflict(conflicts)
        mine_before: set[Path] = set()
        others: set[Path] = set()
        for entry in managed:
            owned = owned_of(entry.get("fieldsV1") or {})[0]
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
    cache: PathCache | None = None,
) -> None:
    """Update `new.metadata.managedFields` for a write by `manager` (in place).

    With `cache`, `old`, `applied` and every field of `new` but managedFields and server-set identity
    (uid, resourceVersion, timestamps) must not change afterwards."""
    entries = [dict(e) for e in (old or {}).get("metadata", {}).get("managedFields") or []]
    paths_of = cache.object_paths if cache is not None else object_paths
    owned_of = cache.owned if cache is not None else _owned
    encode_of = cache.encode if cache is not None else encode
    if applied is None and old:
        mine, removed = changes(old, new, strategy, status=status)
    else:
        old_paths = paths_of(old, strategy, status=status) if old else set()
        new_paths = paths_of(new, strategy, status=status)
        if applied is not None:
            mine = paths_of(applied, strategy, status=status) & new_paths
        else:
            mine = {p for p in new_paths if old is None or get(old, p) != get(new, p)}
        removed = old_paths - new_paths
    me = (manager, operation, "status" if status else "")
    kept: list[dict[str, Any]] = []
    found = False
    for entry in entries:
        before, canonical = owned_of(entry.get("fieldsV1") or {})
        owned = before
        if _entry_id(entry) == me:
            found = True
            owned = (owned - removed) | mine if operation == "Update" else set(mine)
        elif (entry.get("subresource", "") == "status") == status:
            owned = owned - removed - (mine if operation == "Update" or applied is not None else set())
            if applied is not None:
                # Forced or equal-valued fields: an apply shares equal values, takes the rest.
                owned |= {p for p in before & mine if old and get(old, p) == get(new, p)}
        if not owned:
            continue
        # An unchanged, canonically encoded set keeps its dict (encoding it again gives an equal one).
        fields = entry["fieldsV1"] if canonical and owned == before else encode_of(owned)
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
            "fieldsV1": encode_of(mine),
        }
        if status:
            entry["subresource"] = "status"
        kept.append(entry)
    meta = new.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)

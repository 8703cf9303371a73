"""The loopback API's field ownership shortcuts give exactly what the plain definitions give."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from toolhive.testing import _fields, _patches

# Paths depend on value types only inside merge-keyed and set lists, so those carry 1 / 1.0 / True alike.
_SCALARS = st.one_of(st.sampled_from([1, 1.0, True, 0, False, "a", "b", ""]), st.none())
_KEYED_ITEM = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "y", 1, 1.0, True])},
    optional={"value": _SCALARS, "ports": st.lists(st.fixed_dictionaries({"port": _SCALARS}), max_size=2)},
)
_LEAF = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3), st.just({}))
_MAP = st.recursive(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _LEAF, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.one_of(_LEAF, inner), max_size=3),
    max_leaves=8,
)
_LABELS = st.dictionaries(st.sampled_from(["k", "l"]), st.sampled_from(["v", "w"]), max_size=2)
_OBJECT = st.fixed_dictionaries(
    {
        "apiVersion": st.just("v1"),
        "metadata": st.fixed_dictionaries(
            {"name": st.just("o"), "resourceVersion": st.sampled_from(["1", "2"])},
            optional={
                "labels": _LABELS,
                "finalizers": st.lists(_SCALARS, max_size=3),
            },
        ),
    },
    optional={
        "spec": st.fixed_dictionaries(
            {}, optional={"items": st.lists(_KEYED_ITEM, max_size=3), "tags": st.lists(_SCALARS, max_size=3)}
        ).flatmap(lambda spec: _MAP.map(lambda extra: {**extra, **spec})),
        "status": _MAP,
        "data": _MAP,
    },
)
_STRATEGY: _patches.Strategy = {
    "metadata": _patches.METADATA,
    "spec": {"items": ("key", "name", {"ports": ("key", "port", {})}), "tags": ("set",)},
}


def _reference(old: dict[str, Any], new: dict[str, Any], *, status: bool) -> tuple[set[Any], set[Any]]:
    old_paths = _fields.object_paths(old, _STRATEGY, status=status)
    new_paths = _fields.object_paths(new, _STRATEGY, status=status)
    changed = {p for p in new_paths if _fields.get(old, p) != _fields.get(new, p)}
    return changed, old_paths - new_paths


@settings(max_examples=400, deadline=None)
@given(old=_OBJECT, new=_OBJECT, status=st.booleans())
def test_changes_of_an_update_are_what_comparing_every_path_gives(
    old: dict[str, Any], new: dict[str, Any], status: bool
) -> None:
    assert _fields.changes(old, new, _STRATEGY, status=status) == _reference(old, new, status=status)


@settings(max_examples=200, deadline=None)
@given(old=_OBJECT, status=st.booleans(), data=st.data())
def test_changes_of_a_small_edit_are_what_comparing_every_path_gives(
    old: dict[str, Any], status: bool, data: st.DataObject
) -> None:
    new = _patches.clone(old)
    target = new.setdefault("status" if status else "spec", {})
    target[data.draw(st.sampled_from(["a", "items", "tags", "e"]))] = data.draw(
        st.one_of(_LEAF, st.lists(_KEYED_ITEM, max_size=2))
    )
    assert _fields.changes(old, new, _STRATEGY, status=status) == _reference(old, new, status=status)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(_OBJECT, min_size=1, max_size=4))
def test_cached_encodings_are_the_plain_encoding(objects: list[dict[str, Any]]) -> None:
    cache = _fields.PathCache(encodings=3)  # tiny: evictions happen too
    for obj in objects:
        owned = _fields.object_paths(obj, _STRATEGY, status=False)
        encoded = cache.encode(owned)
        assert encoded == _fields.encode(owned)
        assert list(encoded) == list(_fields.encode(owned)), "keys in the same order (the JSON text is equal)"


def _retyped(value: Any) -> Any:
    """An equal document with other number types (1 == 1.0 == True): equal, yet other item keys."""
    if isinstance(value, dict):
        return {k: _retyped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_retyped(v) for v in value]
    if value is True:
        return 1
    if value is False:
        return 0
    if type(value) is int:
        return float(value)
    if type(value) is float:
        return value == 1.0
    return value


@settings(max_examples=300, deadline=None)
@given(old=_OBJECT, status=st.booleans())
def test_changes_of_an_equal_update_with_other_number_types_are_what_comparing_every_path_gives(
    old: dict[str, Any], status: bool
) -> None:
    new = _retyped(old)
    assert new == old
    assert _fields.changes(old, new, _STRATEGY, status=status) == _reference(old, new, status=status)

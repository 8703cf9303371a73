"""discovery's front door: `__all__` is sorted and lists exactly the public names it imports."""

import types

import discovery


def test_all_is_sorted() -> None:
    assert discovery.__all__ == sorted(discovery.__all__)


def test_all_equals_the_public_names() -> None:
    public = {
        name
        for name, value in vars(discovery).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(discovery.__all__) == public


def test_every_export_says_where_it_lives() -> None:
    for name in discovery.__all__:
        assert getattr(discovery, name).__module__.startswith("discovery."), name

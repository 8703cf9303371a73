"""Every documented value changes the render: no key in values.yaml is dead (cert-manager's values linter).

The keys come from the generated schema, so a new value is covered the moment it is added; the changed
value is derived from the key's own schema (another enum member, a bound-respecting number, one more
valid list item), so it always passes validation. ToolHive's accepted-and-ignored keys are the exception:
they must change nothing but NOTES.txt.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import objects
from tests.tools import helm as helm_tool

CHART = Path(__file__).resolve().parents[2] / "chart"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
IGNORED = "ToolHive value accepted for compatibility"

# Most keys matter in discovery mode with telemetry on; these need another starting point.
BASES: dict[str, dict[str, Any]] = {
    "operator.rbac.scope": objects.CLUSTER,
    "operator.rbac.namespaced": objects.STATIC,
}
DEFAULT_BASE = objects.merged(objects.DISCOVERY, {"telemetry": {"enabled": True}})


def leaves(
    schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for name, child in schema.get("properties", {}).items():
        if name == "global" and not path:
            continue
        if child.get("type") == "object" and child.get("additionalProperties") is False:
            yield from leaves(child, (*path, name))
        else:
            yield (*path, name), child


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        section, name = ref.removeprefix("#/").split("/")
        return resolve(SCHEMA[section][name])
    return schema


def changed(value: Any, schema: dict[str, Any]) -> Any:
    """A value different from `value` that the schema still accepts."""
    if "enum" in schema:
        return next(choice for choice in schema["enum"] if choice != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        bigger = value + 1
        return bigger if bigger <= schema.get("maximum", bigger) else value - 1
    if isinstance(value, str):
        return "changed-value"
    if isinstance(value, list):
        items = resolve(schema.get("items", {}))
        if items.get("type") == "string":
            extra: Any = "changed-value"
        elif "matchLabels" in items.get("properties", {}):
            extra = {"matchLabels": {"changed": "value"}}
        else:
            extra = {"name": "CHANGED_VALUE", "key": "changed"}
        return [*value, extra]
    if isinstance(value, dict):
        return {**value, "changed": "value"}
    raise AssertionError(f"no change rule for {value!r}")


def with_value(base: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    values = copy.deepcopy(base)
    node = values
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value
    return values


def current(base: dict[str, Any], path: tuple[str, ...]) -> Any:
    for source in (base, DEFAULTS):
        node: Any = source
        for name in path:
            if not isinstance(node, dict) or name not in node:
                break
            node = node[name]
        else:
            return node
    raise AssertionError(f"{'.'.join(path)} has no default")


# A single-choice enum (telemetry.protocol) cannot change; test_values checks where it is rendered.
KEYS = {
    ".".join(path): (path, schema) for path, schema in leaves(SCHEMA) if len(schema.get("enum", "xx")) > 1
}


def variant(key: str) -> dict[str, Any]:
    path, schema = KEYS[key]
    base = BASES.get(key, DEFAULT_BASE)
    if schema.get("description", "").startswith(IGNORED):
        return with_value(base, path, {"anything": 1})
    return with_value(base, path, changed(current(base, path), schema))


@pytest.fixture(scope="module")
def renders(helm: helm_tool.Helm, chart: Path) -> dict[str, str]:
    """Every base and every one-key variant, rendered concurrently (each helm run is its own process)."""
    jobs = {"default": DEFAULT_BASE, **{f"base:{key}": values for key, values in BASES.items()}}
    jobs.update({key: variant(key) for key in KEYS})
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {
            name: pool.submit(helm.template_text, chart, values=values) for name, values in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("key", sorted(KEYS))
def test_value_changes_the_render(renders: dict[str, str], key: str) -> None:
    before = renders[f"base:{key}" if key in BASES else "default"]
    if KEYS[key][1].get("description", "").startswith(IGNORED):
        assert renders[key] == before, f"{key} is documented as ignored but changes the render"
    else:
        assert renders[key] != before, f"{key} has no effect on the render"

"""The CRDs' CEL rules (x-kubernetes-validations) compile, and judge our manifests as the API server would.

The loopback API runs only a subset of CEL, so the full rules meet real manifests here, through a complete
CEL implementation: defaults are applied first (as the API server does), then every rule on the path is
evaluated with `self` bound to its object.
"""

from __future__ import annotations

import pathlib
from typing import Any

import celpy
import pytest
import yaml

from toolhive.api import crds

MANIFESTS = pathlib.Path(__file__).parents[3] / "manifests"
SCHEMA = crds.build_all()[crds.MCPSERVER_FILE]["spec"]["versions"][-1]["schema"]["openAPIV3Schema"]


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "properties" in schema:
        filled = dict(value)
        for name, child in schema["properties"].items():
            if name not in filled and "default" in child:
                filled[name] = child["default"]
            if name in filled:
                filled[name] = with_defaults(child, filled[name])
        return filled
    if isinstance(value, list) and "items" in schema:
        return [with_defaults(schema["items"], item) for item in value]
    return value


def cel_failures(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """`path: message` for every rule that evaluates to false."""
    failures = []
    environment = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        program = environment.program(environment.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            failures.append(f"{path}: {rule['message']}")
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                failures += cel_failures(child, value[name], f"{path}.{name}" if path else name)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            failures += cel_failures(schema["items"], item, f"{path}[{index}]")
    return failures


def admit(body: dict[str, Any]) -> list[str]:
    return cel_failures(SCHEMA, with_defaults(SCHEMA, body))


VALID = sorted(MANIFESTS.glob("*.yaml"))


def test_there_is_at_least_one_rule_to_check() -> None:
    assert "x-kubernetes-validations" in SCHEMA["properties"]["spec"]["properties"]["permissionProfile"]


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_representative_manifest_passes_every_rule(path: pathlib.Path) -> None:
    assert admit(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    ("profile", "failures"),
    [
        ({"name": "network"}, []),
        ({"type": "builtin", "name": "none"}, []),
        ({"type": "configmap", "name": "my-profile", "key": "profile.json"}, []),
        (
            {"name": "everything"},
            ["spec.permissionProfile: name must be 'none' or 'network' when type is 'builtin'"],
        ),
    ],
    ids=["defaulted builtin network", "builtin none", "any configmap name", "unknown builtin name"],
)
def test_builtin_permission_profile_rule(profile: dict[str, Any], failures: list[str]) -> None:
    body = {"spec": {"image": "x", "permissionProfile": profile}}
    assert admit(body) == failures

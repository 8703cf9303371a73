"""NamespaceDiscovery models: defaults, camelCase aliases, closed shapes, and a CRD-friendly schema."""

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from discovery import models


def test_an_empty_spec_selects_nothing_and_denies_the_system_namespaces() -> None:
    spec = models.NamespaceDiscoverySpec.model_validate({})
    assert spec.selectors == []
    assert spec.namespaces == []
    assert spec.deny_namespaces == ["kube-system", "kube-public", "kube-node-lease"]


def test_the_spec_round_trips_in_its_camel_case_form() -> None:
    raw = {
        "selectors": [
            {
                "matchLabels": {"toolhive.stacklok.dev/enabled": "true"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}],
            }
        ],
        "namespaces": ["staging"],
        "denyNamespaces": ["kube-system"],
    }
    spec = models.NamespaceDiscoverySpec.model_validate(raw)
    assert spec.model_dump(by_alias=True) == raw


def test_an_invalid_selector_still_parses_so_status_can_explain_it() -> None:
    raw = {"selectors": [{}, {"matchExpressions": [{"key": "bad key", "operator": "Gt"}]}]}
    assert len(models.NamespaceDiscoverySpec.model_validate(raw).selectors) == 2


INVALID = [
    pytest.param({"namespace": ["a"]}, "namespace", id="an unknown spec field is named"),
    pytest.param({"namespaces": ["Team_A"]}, "namespaces.0", id="an invalid namespace name is named"),
    pytest.param({"denyNamespaces": ["x" * 64]}, "denyNamespaces.0", id="a too long denied name is named"),
    pytest.param(
        {"selectors": [{"matchLabel": {}}]}, "selectors.0.matchLabel", id="an unknown selector field"
    ),
    pytest.param(
        {"selectors": [{"matchExpressions": [{"key": "a"}]}]}, "operator", id="operator is required"
    ),
]


@pytest.mark.parametrize(("raw", "location"), INVALID)
def test_invalid_specs_name_the_field(raw: dict[str, Any], location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        models.NamespaceDiscoverySpec.model_validate(raw)
    assert location in str(caught.value)


def walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(schema, dict):
        found.append((path, schema))
        for key, value in schema.items():
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found.extend(walk(value, f"{path}/{index}"))
    return found


@pytest.mark.parametrize("model", [models.NamespaceDiscoverySpec, models.NamespaceDiscoveryStatus])
def test_the_schema_is_structural_and_every_field_is_described(model: type[BaseModel]) -> None:
    schema = model.model_json_schema(by_alias=True)
    for path, node in walk(schema):
        assert not {"anyOf", "oneOf", "allOf", "not"} & node.keys(), f"{path} is not structural"
        assert node.get("type") != "null", path
        for name, prop in node.get("properties", {}).items():
            described = prop.get("description") or ("$ref" in prop)
            assert described, f"{path}/properties/{name} has no description"


def test_status_defaults_are_empty_and_counted_zero() -> None:
    status = models.NamespaceDiscoveryStatus.model_validate({})
    assert status.model_dump(by_alias=True) == {
        "observedGeneration": 0,
        "members": [],
        "pending": [],
        "draining": [],
        "memberCount": 0,
        "pendingCount": 0,
        "drainingCount": 0,
        "conditions": [],
    }


def test_printer_columns_show_the_counts() -> None:
    assert [column["jsonPath"] for column in models.PRINTER_COLUMNS][:3] == [
        ".status.memberCount",
        ".status.pendingCount",
        ".status.drainingCount",
    ]

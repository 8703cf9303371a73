"""CRD generation: structural schemas from pydantic models, crds/ without drift, ToolHive's shape."""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

import pydantic
import pytest

from toolhive import cli
from toolhive.api import crdgen, crds

REPO = pathlib.Path(__file__).parents[4]
CRDS = REPO / "crds"
GENERATED = crds.build_all()

# Keywords a structural schema may use (apiextensions.k8s.io/v1 JSONSchemaProps, minus what we never emit).
ALLOWED = {
    "type", "format", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "minProperties",
    "maxProperties", "multipleOf", "properties", "required", "items", "additionalProperties",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-validations", "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
}  # fmt: skip


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Kubernetes' structural-schema rules, as far as our generator can break them."""
    problems = [f"{path}: keyword {key}" for key in schema if key not in ALLOWED]
    kind = schema.get("type")
    if kind is None and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    if schema.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties false")
    if "default" in schema and schema["default"] is None:
        problems.append(f"{path}: null default")
    if kind == "array" and "items" not in schema:
        problems.append(f"{path}: array without items")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{path}: required {name} is not a property")
    if schema.get("required", []) != sorted(schema.get("required", [])):
        problems.append(f"{path}: required not sorted")
    for name in schema.get("x-kubernetes-list-map-keys", []):
        item = schema.get("items", {})
        if name not in item.get("required", []) and "default" not in item.get("properties", {}).get(name, {}):
            problems.append(f"{path}: list-map key {name} must be required or defaulted")
    for name, child in schema.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}[*]")
    if "items" in schema:
        problems += structural_problems(schema["items"], f"{path}[*]")
    return problems


def versions(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {version["name"]: version for version in crd["spec"]["versions"]}


def mcpserver_schema() -> dict[str, Any]:
    schema: dict[str, Any] = versions(GENERATED[crds.MCPSERVER_FILE])["v1beta1"]["schema"]["openAPIV3Schema"]
    return schema


def test_checked_in_crds_match_the_models() -> None:
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in CRDS.glob("*.yaml")}
    assert on_disk == crds.render_all(), "crds/ drifted: run `toolhive-operator crds --write`"


def test_check_command_fails_on_drift_and_write_repairs_it(tmp_path: pathlib.Path) -> None:
    shutil.copytree(CRDS, tmp_path, dirs_exist_ok=True)
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 0
    target = tmp_path / crds.MCPSERVER_FILE
    target.write_text(target.read_text(encoding="utf-8").replace("8080", "8081"), encoding="utf-8")
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 1
    assert cli.main(["crds", "--write", "--dir", str(tmp_path)]) == 0
    assert cli.main(["crds", "--check", "--dir", str(tmp_path)]) == 0


def test_rendering_is_byte_identical_across_runs() -> None:
    assert crds.render_all() == crds.render_all()


@pytest.mark.parametrize("name", sorted(GENERATED), ids=sorted(GENERATED))
def test_every_version_schema_is_structural(name: str) -> None:
    for version in GENERATED[name]["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert structural_problems(schema) == []
        assert set(schema["properties"]["metadata"]) == {"type"}


@pytest.mark.parametrize("name", sorted(GENERATED), ids=sorted(GENERATED))
def test_every_spec_field_is_described(name: str) -> None:
    def undescribed(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if schema.get("description") else [path]
        for child, sub in schema.get("properties", {}).items():
            missing += undescribed(sub, f"{path}.{child}")
        return missing

    schema = versions(GENERATED[name])[GENERATED[name]["spec"]["versions"][-1]["name"]]["schema"]
    assert undescribed(schema["openAPIV3Schema"]["properties"]["spec"], "spec") == []


def test_mcpserver_crd_has_toolhive_names_labels_and_columns() -> None:
    crd = GENERATED[crds.MCPSERVER_FILE]
    assert crd["metadata"] == {
        "name": "mcpservers.toolhive.stacklok.dev",
        "labels": {"toolhive.stacklok.dev/auto-migrate-storage-version": "true"},
    }
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "MCPServer",
        "listKind": "MCPServerList",
        "plural": "mcpservers",
        "singular": "mcpserver",
        "shortNames": ["mcpserver", "mcpservers"],
        "categories": ["toolhive"],
    }
    columns = [
        (c["name"], c["jsonPath"], c["type"]) for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Status", ".status.phase", "string"),
        ("Ready", ".status.conditions[?(@.type=='Ready')].status", "string"),
        ("Replicas", ".status.readyReplicas", "integer"),
        ("URL", ".status.url", "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
    ]


def test_v1beta1_is_storage_and_v1alpha1_is_deprecated_with_the_same_schema() -> None:
    by_name = versions(GENERATED[crds.MCPSERVER_FILE])
    assert list(by_name) == ["v1alpha1", "v1beta1"]
    assert (by_name["v1beta1"]["storage"], by_name["v1alpha1"]["storage"]) == (True, False)
    assert by_name["v1alpha1"]["served"] and by_name["v1beta1"]["served"]
    assert by_name["v1alpha1"]["deprecated"] is True
    assert "deprecated" not in by_name["v1beta1"]
    assert by_name["v1alpha1"]["schema"] == by_name["v1beta1"]["schema"]
    assert by_name["v1beta1"]["subresources"] == {"status": {}}


def test_mcpserver_schema_carries_toolhive_enums_defaults_and_bounds() -> None:
    spec = mcpserver_schema()["properties"]["spec"]
    fields = spec["properties"]
    assert spec["required"] == ["image"]
    assert fields["transport"]["enum"] == ["stdio", "streamable-http", "sse"]
    assert fields["transport"]["default"] == "stdio"
    assert fields["proxyMode"]["enum"] == ["sse", "streamable-http"]
    assert fields["proxyMode"]["default"] == "streamable-http"
    assert (fields["proxyPort"]["minimum"], fields["proxyPort"]["maximum"]) == (1, 65535)
    assert fields["proxyPort"]["default"] == 8080
    assert fields["proxyPort"]["format"] == "int32"
    assert "default" not in fields["mcpPort"]
    assert fields["sessionAffinity"] == {
        **fields["sessionAffinity"],
        "enum": ["ClientIP", "None"],
        "default": "ClientIP",
    }
    assert fields["replicas"]["minimum"] == 0
    assert fields["permissionProfile"]["properties"]["type"]["enum"] == ["builtin", "configmap"]
    assert fields["env"]["x-kubernetes-list-type"] == "map"
    assert fields["args"]["x-kubernetes-list-type"] == "atomic"
    assert fields["podTemplateSpec"] == {
        **fields["podTemplateSpec"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    status = mcpserver_schema()["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Ready", "Failed", "Terminating", "Stopped"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_transport_explains_itself() -> None:
    description = mcpserver_schema()["properties"]["spec"]["properties"]["transport"]["description"]
    assert "stdio" in description and "streamable-http" in description and "Default stdio" in description


def test_unsupported_toolhive_fields_are_declared_loosely_and_say_so() -> None:
    fields = mcpserver_schema()["properties"]["spec"]["properties"]
    for name in ("oidcConfigRef", "authzConfig", "audit", "sessionStorage", "rateLimiting", "groupRef"):
        assert fields[name]["type"] == "object"
        assert fields[name]["x-kubernetes-preserve-unknown-fields"] is True
        assert "not implemented by this operator" in fields[name]["description"]
    assert fields["backendReplicas"]["type"] == "integer"
    assert fields["proxyReadTimeout"]["type"] == "string"


def test_cel_rule_guards_builtin_permission_profiles() -> None:
    profile = mcpserver_schema()["properties"]["spec"]["properties"]["permissionProfile"]
    assert profile["x-kubernetes-validations"] == [
        {
            "rule": "self.type != 'builtin' || self.name in ['none', 'network']",
            "message": "name must be 'none' or 'network' when type is 'builtin'",
        }
    ]


def test_namespacediscovery_crd_is_cluster_scoped_with_count_columns() -> None:
    crd = GENERATED[crds.NAMESPACEDISCOVERY_FILE]
    assert crd["metadata"]["name"] == "namespacediscoveries.toolhive.stacklok.dev"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["nsd"]
    assert crd["spec"]["names"]["categories"] == ["toolhive"]
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["storage"], version["subresources"]) == (
        "v1alpha1",
        True,
        {"status": {}},
    )
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns[:3] == ["Members", "Pending", "Draining"] and columns[-1] == "Age"


# The generator on its own terms.


class _Leaf(pydantic.BaseModel):
    """A leaf."""

    model_config = pydantic.ConfigDict(extra="forbid", use_attribute_docstrings=True)

    size: int = pydantic.Field(3, ge=0, lt=10)
    """How big.

    Second paragraph."""


class _Root(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(use_attribute_docstrings=True)

    leaf: _Leaf | None = None
    """The leaf, described where it is used."""
    free: dict[str, Any] = pydantic.Field(default_factory=dict)
    labels: dict[str, str] | None = None
    tags: list[str] = pydantic.Field(default_factory=list)
    mode: str = pydantic.Field("a", json_schema_extra={"enum": ["a", "b"]})


def test_optional_models_are_inlined_without_null_unions() -> None:
    schema = crdgen.schema_for(_Root)
    assert schema["properties"]["leaf"] == {
        "type": "object",
        "description": "The leaf, described where it is used.",
        "properties": {
            "size": {
                "type": "integer",
                "default": 3,
                "minimum": 0,
                "maximum": 10,
                "exclusiveMaximum": True,
                "description": "How big.\n\nSecond paragraph.",
            }
        },
    }
    assert schema["properties"]["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert schema["properties"]["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert structural_problems(schema) == []


class _Union(pydantic.BaseModel):
    value: int | str


class _Node(pydantic.BaseModel):
    children: list[_Node] = pydantic.Field(default_factory=list)


@pytest.mark.parametrize(
    ("model", "error"),
    [(_Union, "unions other than `X | None`"), (_Node, "recursive model _Node")],
    ids=["a real union", "a recursive model"],
)
def test_models_without_a_structural_schema_are_refused_by_path(
    model: type[pydantic.BaseModel], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        crdgen.schema_for(model)


def test_exactly_one_storage_version_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one version"):
        crdgen.build_crd(
            _Root,
            group="example.com",
            kind="Root",
            plural="roots",
            scope="Cluster",
            versions=[crdgen.Version("v1"), crdgen.Version("v2")],
        )


def test_multiline_descriptions_render_as_yaml_blocks() -> None:
    text = crdgen.render({"description": "one\n\ntwo", "b": 1, "a": [2, 1]})
    assert text == "---\na:\n- 2\n- 1\nb: 1\ndescription: |-\n  one\n\n  two\n"

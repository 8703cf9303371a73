"""Generic CustomResourceDefinition generator: pydantic model -> structural OpenAPI v3 schema -> CRD.

Pure: no I/O. `toolhive.api.crds` describes our CRDs with it and the `crds` CLI command writes the YAML.
It turns pydantic's JSON Schema into what Kubernetes calls a *structural* schema: `$ref`s inlined,
`X | None` collapsed to an optional `X` (never `anyOf` with null), `additionalProperties: false` dropped
(declared properties already close an object), free-form dicts marked `x-kubernetes-preserve-unknown-fields`,
titles removed, descriptions unwrapped into paragraphs. Anything it cannot express raises `ValueError`
naming the schema path, rather than emitting a schema the API server would reject.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel

Schema = dict[str, Any]

# Keys copied as they are; anything else (other than those handled explicitly) is an error.
_PLAIN_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
    }
)
_DROPPED_KEYS = frozenset({"title", "examples", "readOnly", "writeOnly", "deprecated"})
_NULL: Schema = {"type": "null"}

# The root fields every Kubernetes object has, described as the API server describes them.
_ROOT_FIELDS: dict[str, Schema] = {
    "apiVersion": {
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers "
        "should convert recognized schemas to the latest internal value, and may reject unrecognized values. "
        "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    },
    "kind": {
        "description": "Kind is a string value representing the REST resource this object represents. "
        "Servers may infer this from the endpoint the client submits requests to. Cannot be updated. "
        "In CamelCase. "
        "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    },
    "metadata": {"type": "object"},
}


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry (a `kubectl get` column)."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str | None = None
    priority: int | None = None

    def to_manifest(self) -> Schema:
        column: Schema = {"name": self.name, "jsonPath": self.json_path, "type": self.type}
        if self.description is not None:
            column["description"] = self.description
        if self.priority is not None:
            column["priority"] = self.priority
        return column


@dataclasses.dataclass(frozen=True)
class Version:
    """One served version. All versions of a CRD share the root model's schema (conversion `None`)."""

    name: str
    storage: bool = False
    served: bool = True
    deprecation_warning: str | None = None
    """Set to mark the version deprecated; the API server returns this text as a warning."""


def schema_for(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of `model` (validation mode, field aliases as property names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: Mapping[str, Schema] = raw.pop("$defs", {})
    return _structural(raw, defs=defs, path=model.__name__, seen=frozenset())


def build_crd(
    root: type[BaseModel],
    *,
    group: str,
    kind: str,
    plural: str,
    scope: Literal["Namespaced", "Cluster"],
    versions: Sequence[Version],
    singular: str | None = None,
    short_names: Sequence[str] = (),
    categories: Sequence[str] = (),
    printer_columns: Sequence[PrinterColumn] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete `apiextensions.k8s.io/v1` CustomResourceDefinition for `root`.

    `root` is the whole object's model (apiVersion, kind, metadata, spec, status); its apiVersion, kind
    and metadata are replaced by the standard root schema, and a `status` field turns on the status
    subresource. Raises `ValueError` unless exactly one version is the storage version.
    """
    if sum(version.storage for version in versions) != 1:
        raise ValueError(f"{kind}: exactly one version must be the storage version")
    schema = schema_for(root)
    properties = schema.setdefault("properties", {})
    properties.update(_ROOT_FIELDS)
    required = [name for name in schema.get("required", []) if name not in _ROOT_FIELDS]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)

    names: Schema = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": singular or kind.lower(),
    }
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)

    manifest_versions = []
    for version in versions:
        entry: Schema = {
            "name": version.name,
            "served": version.served,
            "storage": version.storage,
            "schema": {"openAPIV3Schema": schema},
        }
        if "status" in properties:
            entry["subresources"] = {"status": {}}
        if printer_columns:
            entry["additionalPrinterColumns"] = [column.to_manifest() for column in printer_columns]
        if version.deprecation_warning is not None:
            entry["deprecated"] = True
            entry["deprecationWarning"] = version.deprecation_warning
        manifest_versions.append(entry)

    metadata: Schema = {"name": f"{plural}.{group}"}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {"group": group, "names": names, "scope": scope, "versions": manifest_versions},
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings; no anchors, so repeated sub-schemas are written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render(manifest: Mapping[str, Any]) -> str:
    """Deterministic YAML for a manifest: sorted keys, list order kept, a leading `---`."""
    return yaml.dump(
        dict(manifest),
        Dumper=_Dumper,
        sort_keys=True,
        explicit_start=True,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def _unwrap(text: str) -> str:
    """Join hard-wrapped docstring lines into paragraphs; `kubectl explain` wraps to the terminal."""
    paragraphs = [
        " ".join(line.strip() for line in block.splitlines()) for block in text.strip().split("\n\n")
    ]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _flatten(node: Schema, *, defs: Mapping[str, Schema], path: str, seen: frozenset[str]) -> Schema:
    """Inline `$ref`, single-member `allOf`, and `X | None`; the referring node's own keys win."""
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        if name in seen:
            raise ValueError(f"{path}: recursive model {name} has no structural schema")
        target = _flatten(defs[name], defs=defs, path=path, seen=seen | {name})
        return {**target, **node, "_seen": seen | {name}}
    if "allOf" in node:
        members = node.pop("allOf")
        if len(members) != 1:
            raise ValueError(f"{path}: allOf with several members is not supported")
        return {**_flatten(members[0], defs=defs, path=path, seen=seen), **node}
    if "anyOf" in node or "oneOf" in node:
        members = [member for member in node.pop("anyOf", node.pop("oneOf", None)) if member != _NULL]
        if len(members) != 1:
            raise ValueError(f"{path}: unions other than `X | None` have no structural schema")
        if node.get("default", ...) is None:
            del node["default"]
        inner = _flatten(members[0], defs=defs, path=path, seen=seen)
        return {**inner, **node}
    if node.get("default", ...) is None:
        del node["default"]
    return node


def _structural(node: Schema, *, defs: Mapping[str, Schema], path: str, seen: frozenset[str]) -> Schema:
    node = _flatten(node, defs=defs, path=path, seen=seen)
    seen = node.pop("_seen", seen)
    out: Schema = {}
    for key, value in node.items():
        if key in _PLAIN_KEYS:
            out[key] = _unwrap(value) if key == "description" else value
        elif key.startswith("x-kubernetes-") or key == "default":
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema's numeric form -> OpenAPI v3.0's bound plus boolean flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("properties", "required", "items", "additionalProperties"):
            continue
        elif key not in _DROPPED_KEYS:
            raise ValueError(f"{path}: schema keyword {key!r} is not supported in a CRD")

    if "enum" in out and "type" not in out:
        kinds = {type(value) for value in out["enum"]}
        if kinds != {str}:
            raise ValueError(f"{path}: enum values must be strings")
        out["type"] = "string"
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise ValueError(f"{path}: every field needs a type (use a concrete annotation)")

    if out.get("type") == "object":
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        if properties is not None:
            out["properties"] = {
                name: _structural(child, defs=defs, path=f"{path}.{name}", seen=seen)
                for name, child in properties.items()
            }
            if node.get("required"):
                out["required"] = sorted(node["required"])
        if extra is True or extra == {}:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            if properties is not None:
                raise ValueError(f"{path}: properties and additionalProperties are mutually exclusive")
            out["additionalProperties"] = _structural(extra, defs=defs, path=f"{path}[*]", seen=seen)
        if properties is None and extra is None:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif out.get("type") == "array":
        if "items" not in node:
            raise ValueError(f"{path}: arrays need an item type")
        out["items"] = _structural(node["items"], defs=defs, path=f"{path}[*]", seen=seen)
    return out

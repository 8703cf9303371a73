"""Keep the chart's generated files in step with their sources: `python chart/hack/sync.py [--check]`.

1. `chart/values.schema.json` from the annotated `chart/values.yaml`: each key's comment becomes its
   description, its default value gives type and default, and `# +schema: {...}` lines are JSON merged
   into the key's schema. Mappings are closed (`additionalProperties: false`) unless annotated open.
   A key without a comment is an error: every value is documented.
2. `chart/crds/*.yaml`: byte-for-byte copies of the repository's `crds/*.yaml` (the one source of truth).

Run by `make chart` (and `make crds`); the chart tests call `check()` and fail on any drift. Needs only
PyYAML; never touches a cluster.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent
REPO = CHART.parent
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
SOURCE_CRDS = REPO / "crds"
CHART_CRDS = CHART / "crds"

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-/]+):(\s|$)")
_ANNOTATION = "+schema:"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# ToolHive's operator-chart values this chart has no use for. They are accepted (and ignored, with a
# warning in NOTES.txt) so an existing ToolHive values file still installs; any other unknown key fails.
TOOLHIVE_IGNORED: dict[str, tuple[str, ...]] = {
    "": ("registryAPI", "kagentIntegration"),
    "operator": (
        "autoscaling",
        "defaultRedis",
        "features",
        "gc",
        "imageDiscovery",
        "leaderElectionRole",
        "ports",
        "proxyHost",
        "vmcpImage",
    ),
}
IGNORED_DESCRIPTION = "ToolHive value accepted for compatibility and ignored by this chart (NOTES.txt warns)."

DEFS: dict[str, Any] = {
    "namespaceName": {
        "type": "string",
        "description": "A namespace name (DNS label).",
        "pattern": _DNS_LABEL,
        "maxLength": 63,
    },
    "labelSelector": {
        "type": "object",
        "description": "A Kubernetes LabelSelector; matchLabels and matchExpressions are ANDed.",
        "additionalProperties": False,
        # An empty selector would read as "every namespace"; discovery refuses it, so the chart does too.
        "minProperties": 1,
        "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string", "minLength": 1},
                        "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": {"type": "array", "items": {"type": "string"}},
                    },
                    # In/NotIn need values; Exists/DoesNotExist take none (Kubernetes' own rule).
                    "allOf": [
                        {
                            "if": {"properties": {"operator": {"enum": ["In", "NotIn"]}}},
                            "then": {"required": ["values"], "properties": {"values": {"minItems": 1}}},
                        },
                        {
                            "if": {"properties": {"operator": {"enum": ["Exists", "DoesNotExist"]}}},
                            "then": {"properties": {"values": {"maxItems": 0}}},
                        },
                    ],
                },
            },
        },
    },
}


class ValuesError(ValueError):
    """values.yaml breaks a documentation rule (names the key path)."""


@dataclass
class _Meta:
    description: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)


def read_comments(text: str) -> dict[tuple[str, ...], _Meta]:
    """Map each key path to the comment block directly above it (no blank line in between)."""
    found: dict[tuple[str, ...], _Meta] = {}
    stack: list[tuple[int, str]] = []
    pending = _Meta()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            pending = _Meta()
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip() if stripped != "#" else ""
            if body.startswith(_ANNOTATION):
                try:
                    pending.schema.update(json.loads(body[len(_ANNOTATION) :]))
                except json.JSONDecodeError as error:
                    raise ValuesError(f"values.yaml:{number}: bad {_ANNOTATION} JSON: {error}") from error
            else:
                pending.description.append(stripped[2:] if stripped.startswith("# ") else stripped[1:])
            continue
        match = _KEY.match(line)
        if match and not stripped.startswith("-"):
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            found[tuple(key for _, key in stack)] = pending
        pending = _Meta()
    return found


def _type_of(value: Any, path: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise ValuesError(f"{'.'.join(path)}: cannot infer a type from {value!r}; add a +schema type")


def _schema_for(value: Any, path: tuple[str, ...], meta: dict[tuple[str, ...], _Meta]) -> dict[str, Any]:
    entry = meta.get(path)
    if entry is None or not entry.description:
        raise ValuesError(f"{'.'.join(path)}: every key needs a comment above it")
    schema: dict[str, Any] = {"type": _type_of(value, path), "description": "\n".join(entry.description)}
    if isinstance(value, dict) and "additionalProperties" not in entry.schema:
        schema["additionalProperties"] = False
        schema["properties"] = _properties(value, path, meta)
    else:
        schema["default"] = value
    schema.update(entry.schema)
    return schema


def _properties(
    mapping: dict[str, Any], path: tuple[str, ...], meta: dict[tuple[str, ...], _Meta]
) -> dict[str, Any]:
    properties = {key: _schema_for(child, (*path, key), meta) for key, child in mapping.items()}
    for ignored in TOOLHIVE_IGNORED.get(".".join(path), ()):
        properties[ignored] = {"description": IGNORED_DESCRIPTION}
    return properties


def build_schema(values_text: str) -> dict[str, Any]:
    """The values schema for this values.yaml text. Raises ValuesError naming the key at fault."""
    values = yaml.safe_load(values_text)
    meta = read_comments(values_text)
    properties = _properties(values, (), meta)
    # A parent chart passes `global` to every subchart; accept it untouched.
    properties["global"] = {"type": "object", "description": "Values shared by a parent chart."}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "toolhive-operator chart values",
        "description": "Generated from values.yaml by chart/hack/sync.py; do not edit by hand.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        # Draft-07 (`definitions`) rather than 2020-12 (`$defs`): every Helm 3 and 4 release validates it.
        "definitions": DEFS,
    }


def render_schema(values_text: str) -> str:
    return json.dumps(build_schema(values_text), indent=2) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated chart file with the content it must have."""
    files = {SCHEMA: render_schema(VALUES.read_text())}
    for source in sorted(SOURCE_CRDS.glob("*.yaml")):
        files[CHART_CRDS / source.name] = source.read_text()
    return files


def check() -> list[str]:
    """Drift between the chart's generated files and their sources, one line each (empty: in step)."""
    problems = []
    expected = expected_files()
    for path, content in expected.items():
        if not path.exists():
            problems.append(f"{path.relative_to(REPO)} is missing")
        elif path.read_text() != content:
            problems.append(f"{path.relative_to(REPO)} differs from its source")
    for stale in sorted(CHART_CRDS.glob("*.yaml")):
        if stale not in expected:
            problems.append(f"{stale.relative_to(REPO)} has no source in crds/")
    return problems


def write() -> None:
    CHART_CRDS.mkdir(exist_ok=True)
    expected = expected_files()
    for stale in CHART_CRDS.glob("*.yaml"):
        if stale not in expected:
            stale.unlink()
    for path, content in expected.items():
        if not path.exists() or path.read_text() != content:
            path.write_text(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift and exit 1 instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make chart` (python chart/hack/sync.py) to regenerate", file=sys.stderr)
        return 1 if problems else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CRD structural schemas: prune unknown fields, apply `default`s, validate, as the API server does.

Pure: no I/O. Called by the loopback store for custom resources, in the real server's order
(prune, default, validate). Validation covers type, enum, minimum/maximum (and exclusive), length,
pattern, items, required, nullable, int-or-string, preserve-unknown-fields, and `x-kubernetes-validations`
rules within the CEL subset of `_cel` (others are skipped); it never checks `format` and treats every list
as atomic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from toolhive.testing import _cel, _patches, _validation

Schema = Mapping[str, Any]
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _go_type(value: Any) -> str:
    if value is None:
        return "null"
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
    return "object"


def prune(
    value: Any, schema: Schema, *, root: bool = False, unknown: list[str] | None = None, path: str = ""
) -> Any:
    """Drop fields the schema does not declare (unless preserve-unknown-fields); record their paths."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        out: dict[str, Any] = {}
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if (root or embedded) and key in _ROOT_KEEP:
                out[key] = child
            elif props is not None and key in props:
                out[key] = prune(child, props[key], unknown=unknown, path=child_path)
            elif isinstance(additional, Mapping):
                out[key] = prune(child, additional, unknown=unknown, path=child_path)
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = child
            elif unknown is not None:
                unknown.append(child_path)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [prune(v, schema["items"], unknown=unknown, path=f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def apply_defaults(value: Any, schema: Schema) -> Any:
    """Fill in `default`s for missing properties, recursively (defaults of defaults included)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, child_schema in props.items():
            if key not in value and "default" in child_schema:
                value[key] = _patches.clone(child_schema["default"])
            if key in value:
                value[key] = apply_defaults(value[key], child_schema)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in list(value):
                if key not in props:
                    value[key] = apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate(
    value: Any,
    schema: Schema,
    path: str,
    errors: list[_validation.FieldError],
    *,
    root: bool = False,
    old: Any = _cel.ABSENT,
) -> None:
    """Append a FieldError per violation, with messages shaped like kube-openapi's.

    `old` is the previous value at the same path on update (for CEL transition rules using `oldSelf`).
    """
    before = len(errors)
    _validate_node(value, schema, path, errors, root=root, old=old)
    if len(errors) == before and value is not None:
        errors.extend(_cel_errors(value, schema, path, old))


def _cel_errors(value: Any, schema: Schema, path: str, old: Any) -> list[_validation.FieldError]:
    """`x-kubernetes-validations` rules in the supported CEL subset (others are skipped, see _cel)."""
    out: list[_validation.FieldError] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule", ""))
        if "oldSelf" in text and old is _cel.ABSENT:
            continue  # a transition rule only applies on update, to a value that existed before
        field = path + str(rule.get("fieldPath") or "")
        try:
            if _cel.evaluate(text, value, old):
                continue
            message = str(rule.get("message") or f"failed rule: {text}")
        except _cel.Unsupported:
            continue
        except _cel.EvalError as exc:
            message = f"{exc} evaluating rule: {text}"
        reason = str(rule.get("reason") or "FieldValueInvalid")
        if reason == "FieldValueForbidden":
            out.append(_validation.forbidden(field, message))
        elif reason == "FieldValueRequired":
            out.append(_validation.required(field, message))
        else:
            shown = schema.get("type") or _go_type(value)
            out.append(_validation.FieldError(field, reason, f'Invalid value: "{shown}": {message}'))
    return out


def _validate_node(
    value: Any, schema: Schema, path: str, errors: list[_validation.FieldError], *, root: bool, old: Any
) -> None:
    if value is None:
        if schema.get("nullable") or not schema.get("type"):
            return
        errors.append(
            _validation.FieldError(
                path,
                "FieldValueTypeInvalid",
                f'Invalid value: "null": {path} in body must be of type {schema["type"]}: "null"',
            )
        )
        return
    expected = schema.get("type")
    actual = _go_type(value)
    if schema.get("x-kubernetes-int-or-string"):
        if actual not in ("integer", "string"):
            errors.append(
                _validation.FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "{actual}": {path} in body must be of type integer,string: "{actual}"',
                )
            )
            return
    elif expected and not (actual == expected or (expected == "number" and actual == "integer")):
        errors.append(
            _validation.FieldError(
                path,
                "FieldValueTypeInvalid",
                f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_validation.render(v) for v in schema["enum"])
        errors.append(
            _validation.FieldError(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_validation.render(value)}: supported values: {supported}",
            )
        )
    if actual in ("integer", "number"):
        shown = _validation.render(value)
        if "maximum" in schema:
            mx = schema["maximum"]
            if schema.get("exclusiveMaximum") and value >= mx:
                errors.append(
                    _validation.invalid(path, value, f"{path} in body should be less than {_num(mx)}")
                )
            elif value > mx:
                errors.append(
                    _validation.FieldError(
                        path,
                        "FieldValueInvalid",
                        f"Invalid value: {shown}: {path} in body should be less than or equal to {_num(mx)}",
                    )
                )
        if "minimum" in schema:
            mn = schema["minimum"]
            if schema.get("exclusiveMinimum") and value <= mn:
                errors.append(
                    _validation.invalid(path, value, f"{path} in body should be greater than {_num(mn)}")
                )
            elif value < mn:
                errors.append(
                    _validation.FieldError(
                        path,
                        "FieldValueInvalid",
                        f"Invalid value: {shown}: {path} in body should be greater than or equal to {_num(mn)}",  # noqa: E501
                    )
                )
        if "multipleOf" in schema and schema["multipleOf"] and value % schema["multipleOf"]:
            errors.append(
                _validation.invalid(
                    path, value, f"{path} in body should be a multiple of {_num(schema['multipleOf'])}"
                )
            )
    if actual == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                _validation.FieldError(
                    path, "FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes"
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                _validation.invalid(
                    path, value, f"{path} in body should be at least {schema['minLength']} chars long"
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(
                _validation.invalid(path, value, f"{path} in body should match '{schema['pattern']}'")
            )
    if actual == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                _validation.FieldError(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                _validation.invalid(
                    path, len(value), f"{path} in body should have at least {schema['minItems']} items"
                )
            )
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                validate(item, items, f"{path}[{i}]", errors)
    if actual == "object":
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(_validation.required(f"{path}.{key}" if path else key))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(
                _validation.FieldError(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                )
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            errors.append(
                _validation.invalid(
                    path,
                    len(value),
                    f"{path} in body should have at least {schema['minProperties']} properties",
                )
            )
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            if root and key in _ROOT_KEEP:
                continue
            child_path = f"{path}.{key}" if path else key
            child_old = old.get(key, _cel.ABSENT) if isinstance(old, Mapping) else _cel.ABSENT
            if key in props:
                validate(child, props[key], child_path, errors, old=child_old)
            elif isinstance(additional, Mapping):
                validate(child, additional, child_path, errors, old=child_old)


def structural_errors(schema: Any, path: str = "openAPIV3Schema") -> list[_validation.FieldError]:
    """A shallow structural check of a CRD schema: every node with properties/items needs a type."""
    errors: list[_validation.FieldError] = []
    if not isinstance(schema, Mapping):
        return [_validation.required(path, "must be an object")]
    if path == "openAPIV3Schema" and schema.get("type") != "object":
        errors.append(_validation.required(f"spec.validation.{path}.type", "must not be empty at the root"))
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    if not schema.get("type") and not preserve and (schema.get("properties") or schema.get("items")):
        errors.append(_validation.required(f"{path}.type", "must not be empty for specified object fields"))
    for key, child in (schema.get("properties") or {}).items():
        errors.extend(structural_errors(child, f"{path}.properties[{key}]"))
    if isinstance(schema.get("items"), Mapping):
        errors.extend(structural_errors(schema["items"], f"{path}.items"))
    return errors

"""Kubernetes name, label and annotation validation with the real API server's messages.

Pure: no I/O. Called by the loopback store before it accepts a write. Functions return a list of
problem strings (empty when valid); `FieldError` carries one `field: Type: detail` line of a 422.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*"
_DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(" + _QUALIFIED_NAME + r")?"


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One cause of a 422 Invalid: `field`, a Kubernetes cause `reason`, and the human detail."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueForbidden, ...
    detail: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.detail}"


def render(value: Any) -> str:
    """Render a value the way Go's `%#v`-ish field errors do for common JSON types."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {render(value)}: {detail}")


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {detail}")


def _remembered(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """A string format check, answered from a bounded cache: the same names, label keys and values come
    back on every write of an object (each caller gets its own list)."""
    cached = functools.lru_cache(maxsize=16384)(lambda value: tuple(check(value)))

    @functools.wraps(check)
    def wrapper(value: str) -> list[str]:
        return list(cached(value)) if type(value) is str else check(value)

    return wrapper


def _format_errors(value: str, *, limit: int, pattern: str, explanation: str) -> list[str]:
    """The two checks every Kubernetes name format makes: a length limit and a regex."""
    out = []
    if len(value) > limit:
        out.append(f"must be no more than {limit} characters")
    if not re.fullmatch(pattern, value):
        out.append(f"{explanation}, regex used for validation is '{pattern}')")
    return out


@_remembered
def dns1123_label_errors(value: str) -> list[str]:
    return _format_errors(
        value,
        limit=63,
        pattern=_DNS1123_LABEL,
        explanation="a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc'",
    )


@_remembered
def dns1123_subdomain_errors(value: str) -> list[str]:
    return _format_errors(
        value,
        limit=253,
        pattern=_DNS1123_SUBDOMAIN,
        explanation="a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com'",
    )


@_remembered
def dns1035_label_errors(value: str) -> list[str]:
    return _format_errors(
        value,
        limit=63,
        pattern=_DNS1035_LABEL,
        explanation="a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123'",
    )


def path_segment_errors(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    for bad in ("/", "%"):
        if bad in value:
            return [f"may not contain '{bad}'"]
    return []


NAME_RULES = {
    "label": dns1123_label_errors,
    "subdomain": dns1123_subdomain_errors,
    "dns1035": dns1035_label_errors,
    "segment": path_segment_errors,
}


@_remembered
def qualified_name_errors(value: str) -> list[str]:
    """Label and annotation keys: optional DNS-subdomain prefix, '/', and a 63-character name."""
    prefix, slash, name = value.rpartition("/")
    out: list[str] = []
    if slash:
        if not prefix:
            out.append("prefix part must be non-empty")
        else:
            out.extend("prefix part " + p for p in dns1123_subdomain_errors(prefix))
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if name and not re.fullmatch(_QUALIFIED_NAME, name):
        out.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            f"validation is '{_QUALIFIED_NAME}')"
        )
    return out


@_remembered
def label_value_errors(value: str) -> list[str]:
    return _format_errors(
        value,
        limit=63,
        pattern=_LABEL_VALUE,
        explanation="a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
        "'12345'",
    )


def metadata_errors(meta: Mapping[str, Any], *, name_rule: str) -> list[FieldError]:
    """Validate name, labels, annotations, finalizers and ownerReferences of an object's metadata."""
    errors: list[FieldError] = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        if not meta.get("generateName"):
            errors.append(required("metadata.name", "name or generateName is required"))
    else:
        problems = NAME_RULES[name_rule](name)
        if problems:
            errors.extend(invalid("metadata.name", name, p) for p in problems)
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, Mapping):
            errors.append(invalid("metadata.labels", labels, "must be a map of strings"))
        else:
            for key, value in labels.items():
                # Checked for emptiness first: nearly every label is valid, and a generator per check
                # was a measurable part of every write.
                problems = qualified_name_errors(key)
                if problems:
                    errors.extend(invalid("metadata.labels", key, p) for p in problems)
                if not isinstance(value, str):
                    errors.append(invalid(f"metadata.labels[{key}]", value, "must be a string"))
                else:
                    problems = label_value_errors(value)
                    if problems:
                        errors.extend(invalid("metadata.labels", value, p) for p in problems)
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, Mapping):
            errors.append(invalid("metadata.annotations", annotations, "must be a map of strings"))
        else:
            total = 0
            for key, value in annotations.items():
                problems = qualified_name_errors(key.lower())
                if problems:
                    errors.extend(invalid("metadata.annotations", key, p) for p in problems)
                if not isinstance(value, str):
                    errors.append(invalid(f"metadata.annotations[{key}]", value, "must be a string"))
                else:
                    total += len(key) + len(value)
            if total > 256 * 1024:
                errors.append(
                    FieldError(
                        "metadata.annotations",
                        "FieldValueTooLong",
                        "Too long: may not be more than 262144 bytes",
                    )
                )
    finalizers = meta.get("finalizers") or []
    for i, fin in enumerate(finalizers):
        if not isinstance(fin, str):
            errors.append(invalid(f"metadata.finalizers[{i}]", fin, "must be a string"))
            continue
        problems = qualified_name_errors(fin)
        if problems:
            errors.append(invalid(f"metadata.finalizers[{i}]", fin, problems[0]))
        elif "/" not in fin and fin not in ("kubernetes", "orphan", "foregroundDeletion"):
            errors.append(
                invalid(
                    f"metadata.finalizers[{i}]",
                    fin,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        field = f"metadata.ownerReferences[{i}]"
        if not isinstance(ref, Mapping):
            errors.append(invalid(field, ref, "must be an object"))
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(required(f"{field}.{key}", f"{key} must not be empty"))
    controllers = [
        r for r in meta.get("ownerReferences") or [] if isinstance(r, Mapping) and r.get("controller")
    ]
    if len(controllers) > 1:
        errors.append(
            invalid(
                "metadata.ownerReferences",
                meta.get("ownerReferences"),
                "Only one reference can have Controller set to true",
            )
        )
    return errors

"""Kubernetes status conditions: the `metav1.Condition` shape, our condition types and reasons.

Pure: no I/O, no clock (callers pass `now`). The reconciler builds conditions with these helpers and
writes them through `status.conditions`; condition types and reasons are spelled here once, matching
ToolHive's where ToolHive has one (`Ready`, `PodTemplateValid`), so dashboards keep working.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

# Condition types. `Ready` and `PodTemplateValid` are ToolHive's; the others are ours.
READY: Final = "Ready"
POD_TEMPLATE_VALID: Final = "PodTemplateValid"
SPEC_VALID: Final = "SpecValid"
UNSUPPORTED_FIELDS: Final = "UnsupportedFields"


class Reason(enum.StrEnum):
    """Condition reasons, used verbatim in conditions, events and logs."""

    READY = "Ready"
    NOT_READY = "NotReady"
    VALID_POD_TEMPLATE = "ValidPodTemplateSpec"
    INVALID_POD_TEMPLATE = "InvalidPodTemplateSpec"
    VALID_SPEC = "ValidSpec"
    INVALID_SPEC = "InvalidSpec"
    ALL_FIELDS_SUPPORTED = "AllFieldsSupported"
    FIELDS_NOT_IMPLEMENTED = "FieldsNotImplemented"


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@functools.lru_cache(maxsize=256)
def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with second precision, as `metav1.Time` serialises (`2026-01-02T03:04:05Z`).

    Memoised: a pass serialises the same few instants (now, the kept transition times) again and again.
    Datetimes compare equal exactly when they are the same instant, which formats to the same text.
    """
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[AwareDatetime, PlainSerializer(format_time, return_type=str)]

_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(BaseModel):
    """One aspect of the resource's current state (the Kubernetes `metav1.Condition` shape)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    type: StrictStr = Field(max_length=316, pattern=_TYPE_PATTERN)
    """Type of the condition, in CamelCase (for example `Ready`)."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    reason: StrictStr = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """Programmatic CamelCase identifier for the last transition."""
    message: StrictStr = Field(max_length=32768)
    """Human-readable details about the last transition; may be empty."""
    last_transition_time: Timestamp
    """When the condition last changed status (RFC 3339)."""
    observed_generation: StrictInt | None = Field(None, ge=0, json_schema_extra={"format": "int64"})
    """The `.metadata.generation` this condition was computed from."""


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """Return `conditions` with `new` in place of the condition of the same type.

    Keeps the old `lastTransitionTime` when the status did not change (Kubernetes' `SetStatusCondition`
    semantics), so re-asserting a condition never looks like a transition and a no-op reconcile writes
    nothing. Order is preserved; a new type is appended.
    """
    result: list[Condition] = []
    found = False
    for old in conditions:
        if old.type != new.type:
            result.append(old)
            continue
        found = True
        if old.status == new.status:
            new = new.model_copy(update={"last_transition_time": old.last_transition_time})
        result.append(new)
    if not found:
        result.append(new)
    return result


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of that type, or None."""
    return next((c for c in conditions if c.type == condition_type), None)


def unsupported_fields_condition(
    fields: Sequence[str], *, generation: int | None, now: datetime
) -> Condition:
    """`UnsupportedFields`: True (reason `FieldsNotImplemented`) while the spec uses fields we accept but
    do not act on, listing them; False (`AllFieldsSupported`) otherwise."""
    if fields:
        return Condition(
            type=UNSUPPORTED_FIELDS,
            status=ConditionStatus.TRUE,
            reason=Reason.FIELDS_NOT_IMPLEMENTED,
            message="accepted but not implemented by this operator: "
            + ", ".join(f"spec.{f}" for f in fields),
            last_transition_time=now,
            observed_generation=generation,
        )
    return Condition(
        type=UNSUPPORTED_FIELDS,
        status=ConditionStatus.FALSE,
        reason=Reason.ALL_FIELDS_SUPPORTED,
        message="every spec field in use is implemented",
        last_transition_time=now,
        observed_generation=generation,
    )

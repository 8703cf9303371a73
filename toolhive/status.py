"""Decide an MCPServer's status from what was observed. Pure: no I/O; the clock arrives as `now`.

Called by reconcile.py after the apply step. Readiness comes from the proxy runner Deployment's status;
an invalid spec is `Failed` with a condition naming the field. Conditions keep their lastTransitionTime
while their status holds, so a pass that changes nothing produces an identical status and no write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from toolhive.api import conditions
from toolhive.api.conditions import Condition, ConditionStatus
from toolhive.api.models import Phase
from toolhive.errors import InvalidSpec

STDIO_REPLICA_CAPPED: Final = "StdioReplicaCapped"
RUNNING_MESSAGE: Final = "MCP server is running"  # ToolHive's wording; its e2e suites assert it
SERVICE_ACCOUNT_FOUND: Final = "ServiceAccountFound"


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the status depends on, gathered by the reconciler."""

    generation: int | None
    previous: dict[str, Any]
    errors: Sequence[InvalidSpec] = ()
    deployment: dict[str, Any] | None = None
    url: str | None = None
    unsupported: Sequence[str] = ()
    replicas_capped: bool = False
    terminating: bool = False
    service_account: tuple[str, bool] | None = None
    """`spec.serviceAccount` and whether it exists (None: the field is unset)."""


def decide_status(observed: Observed, *, now: datetime) -> dict[str, Any]:
    """The complete `status` to write (JSON-ready, camelCase)."""
    previous = [Condition.model_validate(item) for item in observed.previous.get("conditions") or []]
    generation = observed.generation
    phase, ready_replicas, message = _phase(observed)

    def condition(kind: str, ok: bool, reason: str, text: str) -> Condition:
        return Condition(
            type=kind,
            status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
            reason=reason,
            message=text,
            last_transition_time=now,
            observed_generation=generation,
        )

    result = list(previous)
    pod_template_errors = [e for e in observed.errors if e.field_path.startswith("spec.podTemplateSpec")]
    other_errors = [e for e in observed.errors if e not in pod_template_errors]
    updates = [
        condition(
            conditions.READY,
            phase is Phase.READY,
            conditions.Reason.READY if phase is Phase.READY else conditions.Reason.NOT_READY,
            message,
        ),
        condition(
            conditions.SPEC_VALID,
            not other_errors,
            conditions.Reason.VALID_SPEC if not other_errors else conditions.Reason.INVALID_SPEC,
            "; ".join(str(e) for e in other_errors) or "spec is valid",
        ),
        condition(
            conditions.POD_TEMPLATE_VALID,
            not pod_template_errors,
            conditions.Reason.VALID_POD_TEMPLATE
            if not pod_template_errors
            else conditions.Reason.INVALID_POD_TEMPLATE,
            "; ".join(str(e) for e in pod_template_errors) or "podTemplateSpec is valid",
        ),
        conditions.unsupported_fields_condition(observed.unsupported, generation=generation, now=now),
    ]
    if observed.replicas_capped:
        updates.append(
            condition(
                STDIO_REPLICA_CAPPED,
                True,
                "StdioReplicaCapped",
                "stdio servers cannot scale: the proxy runner runs 1 replica",
            )
        )
    if observed.service_account is not None:
        account, found = observed.service_account
        updates.append(
            condition(
                SERVICE_ACCOUNT_FOUND,
                found,
                "ServiceAccountFound" if found else "ServiceAccountNotFound",
                f"ServiceAccount {account!r} exists"
                if found
                else f"spec.serviceAccount: ServiceAccount {account!r} not found in this namespace; "
                "create it or remove the field",
            )
        )
    for update in updates:
        result = conditions.set_condition(result, update)
    if not observed.replicas_capped:
        result = [c for c in result if c.type != STDIO_REPLICA_CAPPED]
    if observed.service_account is None:
        result = [c for c in result if c.type != SERVICE_ACCOUNT_FOUND]

    status: dict[str, Any] = {
        "phase": phase.value,
        "message": message,
        "observedGeneration": generation,
        "conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result],
    }
    if observed.url and not observed.errors:
        status["url"] = observed.url
    elif observed.previous.get("url") and not observed.errors:
        status["url"] = observed.previous["url"]
    if ready_replicas is not None:
        status["readyReplicas"] = ready_replicas
    return {key: value for key, value in status.items() if value is not None}


def _phase(observed: Observed) -> tuple[Phase, int | None, str]:
    if observed.terminating:
        return Phase.TERMINATING, None, "MCP server is being deleted"
    if observed.errors:
        return Phase.FAILED, None, "invalid spec: " + "; ".join(str(e) for e in observed.errors)
    if observed.service_account is not None and not observed.service_account[1]:
        account = observed.service_account[0]
        return Phase.PENDING, None, f"waiting for ServiceAccount {account!r} (spec.serviceAccount)"
    deployment = observed.deployment
    if deployment is None:
        return Phase.PENDING, None, "creating the proxy runner"
    spec = deployment.get("spec") or {}
    state = deployment.get("status") or {}
    ready = int(state.get("readyReplicas") or 0)
    if spec.get("replicas") == 0:
        return Phase.STOPPED, ready, "proxy runner scaled to zero"
    if ready > 0:
        return Phase.READY, ready, RUNNING_MESSAGE
    return Phase.PENDING, ready, "waiting for the proxy runner to become ready"

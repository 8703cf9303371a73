"""decide_status: phase from Deployment readiness, Failed names the field, stable on repeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from toolhive import status
from toolhive.errors import InvalidSpec

NOW = datetime(2026, 11, 24, 1, 0, 0, tzinfo=UTC)


def deployment(*, replicas: int | None = 1, ready: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    return {"spec": spec, "status": {"readyReplicas": ready}}


def condition(result: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in result["conditions"] if c["type"] == kind)


@pytest.mark.parametrize(
    ("observed", "phase", "message"),
    [
        pytest.param(status.Observed(3, {}), "Pending", "creating the proxy runner", id="no deployment yet"),
        pytest.param(
            status.Observed(3, {}, deployment=deployment(ready=0)),
            "Pending",
            "waiting for the proxy runner to become ready",
            id="deployment without ready pods",
        ),
        pytest.param(
            status.Observed(3, {}, deployment=deployment(ready=1)),
            "Ready",
            "MCP server is running",
            id="a ready pod makes it ready",
        ),
        pytest.param(
            status.Observed(3, {}, deployment=deployment(replicas=0)),
            "Stopped",
            "proxy runner scaled to zero",
            id="zero replicas is stopped",
        ),
        pytest.param(
            status.Observed(3, {}, errors=[InvalidSpec("spec.proxyPort", "must be <= 65535")]),
            "Failed",
            "invalid spec: spec.proxyPort: must be <= 65535",
            id="an invalid spec fails naming the field",
        ),
        pytest.param(
            status.Observed(3, {}, terminating=True),
            "Terminating",
            "MCP server is being deleted",
            id="deleting",
        ),
    ],
)
def test_phase_and_message(observed: status.Observed, phase: str, message: str) -> None:
    result = status.decide_status(observed, now=NOW)
    assert (result["phase"], result["message"]) == (phase, message)
    assert result["observedGeneration"] == 3
    assert condition(result, "Ready")["status"] == ("True" if phase == "Ready" else "False")


def test_invalid_spec_condition_names_the_field_and_rule() -> None:
    observed = status.Observed(2, {}, errors=[InvalidSpec("spec.secrets[0].key", "must not be empty")])
    result = status.decide_status(observed, now=NOW)
    spec_valid = condition(result, "SpecValid")
    assert spec_valid["status"] == "False"
    assert spec_valid["reason"] == "InvalidSpec"
    assert spec_valid["message"] == "spec.secrets[0].key: must not be empty"
    assert "url" not in result


def test_pod_template_errors_flip_pod_template_valid_only() -> None:
    observed = status.Observed(2, {}, errors=[InvalidSpec("spec.podTemplateSpec.spec", "must be an object")])
    result = status.decide_status(observed, now=NOW)
    assert condition(result, "PodTemplateValid")["status"] == "False"
    assert condition(result, "SpecValid")["status"] == "True"


def test_repeating_a_decision_later_yields_an_identical_status() -> None:
    first = status.decide_status(
        status.Observed(1, {}, deployment=deployment(ready=1), url="http://x"), now=NOW
    )
    again = status.decide_status(
        status.Observed(1, first, deployment=deployment(ready=1), url="http://x"),
        now=NOW + timedelta(hours=1),
    )
    assert again == first


def test_a_transition_updates_last_transition_time() -> None:
    pending = status.decide_status(status.Observed(1, {}, deployment=deployment(ready=0)), now=NOW)
    later = NOW + timedelta(minutes=5)
    ready = status.decide_status(status.Observed(1, pending, deployment=deployment(ready=1)), now=later)
    assert condition(pending, "Ready")["lastTransitionTime"] == "2026-11-24T01:00:00Z"
    assert condition(ready, "Ready")["lastTransitionTime"] == "2026-11-24T01:05:00Z"
    assert condition(ready, "SpecValid")["lastTransitionTime"] == "2026-11-24T01:00:00Z"


def test_stdio_cap_condition_appears_and_goes() -> None:
    capped = status.decide_status(status.Observed(1, {}, replicas_capped=True), now=NOW)
    assert condition(capped, status.STDIO_REPLICA_CAPPED)["status"] == "True"
    uncapped = status.decide_status(status.Observed(2, capped), now=NOW)
    assert all(c["type"] != status.STDIO_REPLICA_CAPPED for c in uncapped["conditions"])


def test_unsupported_fields_are_reported_not_dropped() -> None:
    result = status.decide_status(status.Observed(1, {}, unsupported=["audit", "groupRef"]), now=NOW)
    reported = condition(result, "UnsupportedFields")
    assert reported["status"] == "True"
    assert "spec.audit" in reported["message"] and "spec.groupRef" in reported["message"]

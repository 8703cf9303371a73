"""The operator's rules for inputs the API server accepts but that cannot work: huge args, a missing
ServiceAccount. Each is a clear problem naming the field (pure: validation and decide_status)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from toolhive import status
from toolhive.api import validation
from toolhive.errors import InvalidSpec

NOW = datetime(2026, 11, 24, 1, 0, 0, tzinfo=UTC)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "toolhive.stacklok.dev/v1beta1",
        "kind": "MCPServer",
        "metadata": {"name": "fetch", "namespace": "team-a", "generation": 1},
        "spec": {"image": "ghcr.io/example/server:1", **spec},
    }


def problems(**spec: Any) -> list[str]:
    return [str(problem) for problem in validation.check(body(**spec)).problems]


@pytest.mark.parametrize(
    "args",
    [[], ["--port", "8080"], ["x" * validation.MAX_ARG_BYTES], ["y" * 1024] * 256],
    ids=["none", "ordinary", "one argument at exec's limit", "256 KiB in total"],
)
def test_args_within_the_bounds_are_valid(args: list[str]) -> None:
    assert problems(args=args) == []


def test_one_argument_past_exec_limit_is_named_by_index() -> None:
    found = problems(args=["ok", "x" * (validation.MAX_ARG_BYTES + 1)])
    assert found == [f"spec.args[1]: is {validation.MAX_ARG_BYTES + 1} bytes; at most 131072 (exec's limit)"]


def test_args_past_the_total_bound_name_the_list() -> None:
    (found,) = problems(args=["z" * 1024] * 300)
    assert found.startswith("spec.args: are 307200 bytes in total; at most 262144")


def test_the_bound_counts_bytes_not_characters() -> None:
    # 'é' is two bytes in UTF-8: 70,000 of them pass a character count but not exec's byte limit.
    assert problems(args=["é" * 70_000])[0].startswith("spec.args[0]: is 140000 bytes")


def test_a_missing_service_account_is_pending_with_a_condition_naming_the_field() -> None:
    result = status.decide_status(status.Observed(1, {}, service_account=("nope", False)), now=NOW)
    assert result["phase"] == "Pending"
    assert result["message"] == "waiting for ServiceAccount 'nope' (spec.serviceAccount)"
    found = next(c for c in result["conditions"] if c["type"] == status.SERVICE_ACCOUNT_FOUND)
    assert (found["status"], found["reason"]) == ("False", "ServiceAccountNotFound")
    assert found["message"].startswith("spec.serviceAccount: ServiceAccount 'nope' not found")


def test_a_found_service_account_is_true_and_an_unset_one_drops_the_condition() -> None:
    found = status.decide_status(status.Observed(1, {}, service_account=("mcp", True)), now=NOW)
    assert found["phase"] == "Pending"  # no Deployment yet: the usual phase, not the waiting one
    assert any(
        c["type"] == status.SERVICE_ACCOUNT_FOUND and c["status"] == "True" for c in found["conditions"]
    )
    unset = status.decide_status(status.Observed(2, found), now=NOW)
    assert all(c["type"] != status.SERVICE_ACCOUNT_FOUND for c in unset["conditions"])


def test_an_invalid_spec_wins_over_a_missing_service_account() -> None:
    observed = status.Observed(
        1, {}, errors=[InvalidSpec("spec.proxyPort", "must be <= 65535")], service_account=("nope", False)
    )
    assert status.decide_status(observed, now=NOW)["phase"] == "Failed"

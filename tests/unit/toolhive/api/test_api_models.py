"""MCPServer models: ToolHive manifests parse, round-trip unchanged, and get ToolHive's defaults."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

import toolhive.api
from toolhive.api import conditions, models

MANIFESTS = pathlib.Path(__file__).parents[3] / "manifests"
VALID = sorted(MANIFESTS.glob("*.yaml"))


def load(path: pathlib.Path) -> dict[str, Any]:
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(body, dict)
    return body


def test_the_representative_manifests_are_all_there() -> None:
    names = {path.stem for path in VALID}
    assert {"stdio", "sse", "streamable-http", "service-account", "pod-template-spec", "secrets"} <= names


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_manifest_round_trips_unchanged(path: pathlib.Path) -> None:
    body = load(path)
    server = models.MCPServer.model_validate(body)
    assert server.model_dump(mode="json", by_alias=True, exclude_unset=True) == body


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_manifest_reparses_from_its_own_full_dump(path: pathlib.Path) -> None:
    server = models.MCPServer.model_validate(load(path))
    full = server.model_dump(mode="json", exclude_none=True)
    assert models.MCPServer.model_validate(full) == server


def test_an_image_alone_gets_toolhive_defaults() -> None:
    spec = models.MCPServerSpec.model_validate({"image": "mcp/fetch"})
    assert spec.transport is models.Transport.STDIO
    assert spec.proxy_mode is models.ProxyMode.STREAMABLE_HTTP
    assert spec.proxy_port == 8080
    assert spec.mcp_port is None
    assert spec.effective_mcp_port == 8080
    assert spec.session_affinity is models.SessionAffinity.CLIENT_IP
    assert spec.trust_proxy_headers is False
    assert spec.replicas is None
    assert (spec.args, spec.env, spec.secrets, spec.volumes) == ([], [], [], [])


def test_defaults_are_not_dumped_when_unset_so_patches_stay_minimal() -> None:
    spec = models.MCPServerSpec.model_validate({"image": "mcp/fetch"})
    assert spec.model_dump(exclude_unset=True) == {"image": "mcp/fetch"}


def test_secret_target_env_name_defaults_to_the_key() -> None:
    spec = models.MCPServerSpec.model_validate(load(MANIFESTS / "secrets.yaml")["spec"])
    assert [secret.env_name for secret in spec.secrets] == ["GITHUB_PERSONAL_ACCESS_TOKEN", "GITHUB_APP_ID"]


def test_permission_profile_type_defaults_to_builtin() -> None:
    profile = models.PermissionProfileRef.model_validate({"name": "none"})
    assert profile.type is models.PermissionProfileType.BUILTIN


def test_python_names_and_manifest_names_both_construct_a_spec() -> None:
    by_alias = models.MCPServerSpec.model_validate({"image": "x", "proxyPort": 9000})
    by_name = models.MCPServerSpec(image="x", proxy_port=9000)
    assert by_alias == by_name


def test_pod_template_spec_is_kept_verbatim() -> None:
    body = load(MANIFESTS / "pod-template-spec.yaml")
    server = models.MCPServer.model_validate(body)
    assert server.spec.pod_template_spec == body["spec"]["podTemplateSpec"]


def test_identity_helpers_read_metadata() -> None:
    server = models.MCPServer.model_validate(
        {"metadata": {"name": "fetch", "namespace": "team-a", "generation": 3}, "spec": {"image": "x"}}
    )
    assert (server.name, server.namespace, server.generation) == ("fetch", "team-a", 3)


def test_unsupported_fields_lists_what_the_spec_sets_by_manifest_name() -> None:
    spec = models.MCPServerSpec.model_validate(load(MANIFESTS / "unsupported-fields.yaml")["spec"])
    assert models.unsupported_fields(spec) == [
        "audit",
        "backendReplicas",
        "groupRef",
        "proxyReadTimeout",
        "proxyWriteTimeout",
        "sessionStorage",
        "telemetryConfigRef",
    ]


def test_a_plain_spec_uses_no_unsupported_fields() -> None:
    assert models.unsupported_fields(models.MCPServerSpec(image="x")) == []


def test_every_toolhive_field_is_a_spec_field() -> None:
    toolhive_fields = {
        "image", "transport", "proxyMode", "proxyPort", "mcpPort", "args", "env", "volumes", "resources",
        "secrets", "serviceAccount", "permissionProfile", "podTemplateSpec", "resourceOverrides",
        "oidcConfigRef", "authzConfig", "authzConfigRef", "audit", "toolConfigRef", "externalAuthConfigRef",
        "webhookConfigRef", "authServerRef", "telemetryConfigRef", "trustProxyHeaders", "endpointPrefix",
        "groupRef", "sessionAffinity", "replicas", "backendReplicas", "sessionStorage", "rateLimiting",
        "proxyReadTimeout", "proxyWriteTimeout",
    }  # fmt: skip
    aliases = {field.alias for field in models.MCPServerSpec.model_fields.values()}
    assert aliases == toolhive_fields


def test_fail_closed_fields_are_a_subset_of_the_unsupported_ones() -> None:
    assert models.FAIL_CLOSED_FIELDS <= models.UNSUPPORTED_FIELDS <= set(models.MCPServerSpec.model_fields)


def test_status_round_trips_with_rfc3339_times() -> None:
    status = {
        "phase": "Ready",
        "url": "http://mcp-fetch-proxy.team-a.svc.cluster.local:8080/mcp",
        "observedGeneration": 4,
        "readyReplicas": 1,
        "message": "ready",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "proxy is available",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 4,
            }
        ],
    }
    parsed = models.MCPServerStatus.model_validate(status)
    assert parsed.phase is models.Phase.READY
    assert parsed.model_dump(mode="json", exclude_unset=True) == status


def test_status_written_by_toolhive_go_operator_still_parses() -> None:
    parsed = models.MCPServerStatus.model_validate({"phase": "Pending", "toolConfigHash": "abc"})
    assert parsed.phase is models.Phase.PENDING


def test_set_condition_keeps_the_transition_time_while_status_is_unchanged() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    ready = conditions.Condition(
        type=conditions.READY, status="True", reason="Ready", message="a", last_transition_time=first
    )
    again = ready.model_copy(update={"message": "b", "last_transition_time": later})
    result = conditions.set_condition([ready], again)
    assert result == [again.model_copy(update={"last_transition_time": first})]


def test_set_condition_records_a_new_transition_and_appends_new_types() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    ready = conditions.Condition(
        type="Ready", status="True", reason="Ready", message="", last_transition_time=first
    )
    broken = conditions.Condition(
        type="Ready", status="False", reason="NotReady", message="", last_transition_time=later
    )
    other = conditions.unsupported_fields_condition(["audit"], generation=2, now=later)
    result = conditions.set_condition(conditions.set_condition([ready], broken), other)
    assert result == [broken, other]
    assert conditions.find_condition(result, "UnsupportedFields") == other
    assert conditions.find_condition(result, "Missing") is None


def test_unsupported_fields_condition_names_the_fields() -> None:
    now = datetime(2026, 1, 1, 12, 30, 15, 999, tzinfo=UTC)
    condition = conditions.unsupported_fields_condition(["audit", "groupRef"], generation=7, now=now)
    assert condition.model_dump(mode="json") == {
        "type": "UnsupportedFields",
        "status": "True",
        "reason": "FieldsNotImplemented",
        "message": "accepted but not implemented by this operator: spec.audit, spec.groupRef",
        "lastTransitionTime": "2026-01-01T12:30:15Z",
        "observedGeneration": 7,
    }
    clear = conditions.unsupported_fields_condition([], generation=7, now=now)
    assert (clear.status, clear.reason) == ("False", "AllFieldsSupported")


def test_front_door_exports_exactly_its_public_names() -> None:
    public = {name for name in vars(toolhive.api) if not name.startswith("_")}
    modules = {"conditions", "models", "validation", "crdgen", "crds"}
    assert len(set(toolhive.api.__all__)) == len(toolhive.api.__all__)  # ruff (RUF022) keeps it sorted
    assert set(toolhive.api.__all__) == public - modules

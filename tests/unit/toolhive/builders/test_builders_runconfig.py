"""The RunConfig ConfigMap: ToolHive's `runconfig.json` fields, and a checksum that follows the content."""

from __future__ import annotations

import json

import pytest
from builders_testkit import Golden, MakeServer

from toolhive import constants
from toolhive.builders import BuildConfig, runconfig


def _doc(manifest: dict[str, object]) -> dict[str, object]:
    data = manifest["data"]
    assert isinstance(data, dict)
    parsed = json.loads(data["runconfig.json"])
    assert isinstance(parsed, dict)
    return parsed


def test_the_configmap_carries_runconfig_json_and_toolhive_labels(
    make_server: MakeServer, config: BuildConfig
) -> None:
    manifest = runconfig.build_runconfig_configmap(make_server(), config=config)
    assert manifest["metadata"]["name"] == "github-runconfig"
    assert set(manifest["data"]) == {"runconfig.json"}
    labels = manifest["metadata"]["labels"]
    assert labels["toolhive.stacklok.io/component"] == "run-config"
    assert labels["toolhive.stacklok.io/mcp-server"] == "github"
    assert labels["app.kubernetes.io/managed-by"] == "toolhive-operator"


def test_the_content_checksum_annotation_matches_the_data(
    make_server: MakeServer, config: BuildConfig
) -> None:
    server = make_server()
    manifest = runconfig.build_runconfig_configmap(server, config=config)
    annotation = manifest["metadata"]["annotations"][constants.ANNOTATION_CONTENT_CHECKSUM]
    assert annotation == runconfig.content_checksum(manifest["data"], manifest["metadata"]["labels"])
    assert annotation == runconfig.runconfig_checksum(server, config=config)


@pytest.mark.parametrize(
    ("spec", "field", "expected"),
    [
        pytest.param({}, "schema_version", "v0.1.0", id="schema version is ToolHive's current one"),
        pytest.param(
            {"transport": "stdio"}, "proxy_mode", "streamable-http", id="stdio defaults to streamable-http"
        ),
        pytest.param(
            {"transport": "stdio", "proxyMode": "sse"}, "proxy_mode", "sse", id="stdio honours proxyMode"
        ),
        pytest.param(
            {"transport": "sse", "proxyMode": "streamable-http"}, "proxy_mode", "sse", id="http ignores it"
        ),
        pytest.param({"proxyPort": 9090}, "port", 9090, id="port is proxyPort"),
        pytest.param({}, "target_port", 8080, id="target port falls back to 8080"),
        pytest.param({"mcpPort": 3000}, "target_port", 3000, id="target port is mcpPort"),
        pytest.param({"args": ["--read-only"]}, "cmd_args", ["--read-only"], id="args become cmd_args"),
        pytest.param({}, "host", "0.0.0.0", id="the proxy listens on all addresses"),
        pytest.param({"trustProxyHeaders": True}, "trust_proxy_headers", True, id="trust proxy headers"),
        pytest.param({"endpointPrefix": "/github"}, "endpoint_prefix", "/github", id="endpoint prefix"),
    ],
)
def test_spec_fields_map_to_runconfig_fields(
    make_server: MakeServer, config: BuildConfig, spec: dict[str, object], field: str, expected: object
) -> None:
    doc = _doc(runconfig.build_runconfig_configmap(make_server(**spec), config=config))
    assert doc[field] == expected


def test_transport_environment_is_set_after_the_users_variables(
    make_server: MakeServer, config: BuildConfig
) -> None:
    server = make_server(
        transport="sse",
        mcpPort=3000,
        env=[{"name": "MCP_TRANSPORT", "value": "x"}, {"name": "A", "value": "1"}],
    )
    env = _doc(runconfig.build_runconfig_configmap(server, config=config))["env_vars"]
    assert env == {"A": "1", "FASTMCP_PORT": "3000", "MCP_PORT": "3000", "MCP_TRANSPORT": "sse"}


def test_secrets_never_appear_in_the_runconfig(make_server: MakeServer, config: BuildConfig) -> None:
    server = make_server(secrets=[{"name": "gh", "key": "token", "targetEnvName": "GITHUB_TOKEN"}])
    text = runconfig.render_runconfig(server, config=config)
    assert "GITHUB_TOKEN" not in text
    assert "secrets" not in json.loads(text)


@pytest.mark.parametrize(
    ("profile", "name_or_path", "allows_all"),
    [
        pytest.param(None, None, True, id="no profile means ToolHive's network default"),
        pytest.param({"type": "builtin", "name": "none"}, "none", False, id="builtin none"),
        pytest.param({"type": "builtin", "name": "network"}, "network", True, id="builtin network"),
    ],
)
def test_permission_profiles(
    make_server: MakeServer, config: BuildConfig, profile: object, name_or_path: str | None, allows_all: bool
) -> None:
    spec = {"permissionProfile": profile} if profile else {}
    doc = _doc(runconfig.build_runconfig_configmap(make_server(**spec), config=config))
    assert doc.get("permission_profile_name_or_path") == name_or_path
    assert doc["permission_profile"]["network"]["outbound"]["insecure_allow_all"] is allows_all  # type: ignore[index]


def test_a_configmap_profile_is_read_from_its_mounted_file(
    make_server: MakeServer, config: BuildConfig
) -> None:
    server = make_server(permissionProfile={"type": "configmap", "name": "profiles", "key": "strict.json"})
    doc = _doc(runconfig.build_runconfig_configmap(server, config=config))
    assert doc["permission_profile_name_or_path"] == "/etc/toolhive/profiles/strict.json"
    assert doc["permission_profile"] is None


def test_the_generation_is_recorded_for_the_runners_apply_gate(
    make_server: MakeServer, config: BuildConfig
) -> None:
    doc = _doc(runconfig.build_runconfig_configmap(make_server(generation=7), config=config))
    assert doc["mcpserver_generation"] == 7


def test_middleware_configs_are_left_to_the_runner(make_server: MakeServer, config: BuildConfig) -> None:
    doc = _doc(runconfig.build_runconfig_configmap(make_server(), config=config))
    assert "middleware_configs" not in doc


@pytest.mark.parametrize("transport", ["stdio", "sse", "streamable-http"])
def test_runconfig_json_golden(
    make_server: MakeServer, config: BuildConfig, golden: Golden, transport: str
) -> None:
    server = make_server(
        transport=transport,
        mcpPort=3000,
        args=["--toolsets", "repos,issues"],
        env=[{"name": "GITHUB_HOST", "value": "github.com"}],
        generation=4,
    )
    golden.check(f"runconfig-{transport}.json", runconfig.render_runconfig(server, config=config))


def test_configmap_golden(make_server: MakeServer, config: BuildConfig, golden: Golden) -> None:
    golden.check(
        "configmap-runconfig.json", runconfig.build_runconfig_configmap(make_server(), config=config)
    )


def test_runconfig_json_is_the_text_the_standard_encoder_writes_for_any_characters(
    make_server: MakeServer, config: BuildConfig
) -> None:
    # render_runconfig uses orjson; the checksum (and so the pod roll) must not depend on that choice.
    awkward = 'é ü 日本 \u2028 \x7f \x1f tab\t quote" back\\slash / 😀'
    server = make_server(
        args=["--greeting", awkward, ""],
        env=[{"name": "MOTTO", "value": awkward}, {"name": "EMPTY", "value": ""}],
    )
    document = runconfig.runconfig_document(server, config=config)
    expected = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    assert runconfig.render_runconfig(server, config=config) == expected

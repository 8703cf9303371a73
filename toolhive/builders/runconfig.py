"""The RunConfig ConfigMap `<name>-runconfig`: `runconfig.json` in the format ToolHive's proxy runner reads.

Pure: no I/O. Called by `builders.build_all` and by `deployment.py` (for the checksum that rolls the proxy
pods when the configuration changes). The runner (`thv-proxyrunner run`) loads
`/etc/runconfig/runconfig.json` into `pkg/runner.RunConfig` and uses it as-is, overriding only the image,
the pod patch (`--k8s-pod-patch`) and the generation (from `THV_MCPSERVER_GENERATION`).

Field names, their order and `schema_version` follow `pkg/runner/config.go` (`CurrentSchemaVersion`
"v0.1.0") and what `runner.NewOperatorRunConfigBuilder` derives (container name and labels, transport
environment, default permission profile). Fields ToolHive leaves empty (`omitempty`) are left out.
`middleware_configs` is deliberately not written: when it is empty the runner derives the middleware
chain from the typed fields itself (`PopulateMiddlewareConfigs`), which keeps us independent of the
middleware parameter formats. Secrets never appear here; they reach the MCP server through the pod patch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import orjson

from toolhive import constants, names
from toolhive.api import models
from toolhive.builders import inputs, meta

SCHEMA_VERSION: Final = "v0.1.0"
PERMISSION_PROFILE_DIR: Final = "/etc/toolhive/profiles"
"""Where a ConfigMap permission profile is mounted into the proxy runner (ToolHive's path)."""


def effective_proxy_mode(spec: models.MCPServerSpec) -> str:
    """What the proxy speaks to clients: `proxyMode` for stdio, the transport itself otherwise."""
    if spec.transport is models.Transport.STDIO:
        return spec.proxy_mode.value
    return spec.transport.value


def _builtin_profile(name: str) -> dict[str, Any]:
    # The JSON form of toolhive-core's BuiltinNoneProfile/BuiltinNetworkProfile.
    return {
        "name": name,
        "read": [],
        "write": [],
        "network": {
            "outbound": {"insecure_allow_all": name == "network", "allow_host": [], "allow_port": []},
        },
        "privileged": False,
    }


def _permission_profile(spec: models.MCPServerSpec) -> tuple[str | None, dict[str, Any] | None]:
    """(`permission_profile_name_or_path`, `permission_profile`) as the operator builder leaves them."""
    profile = spec.permission_profile
    if profile is None:
        return None, _builtin_profile("network")  # ToolHive's default when nothing is named
    if profile.type is models.PermissionProfileType.BUILTIN:
        return profile.name, _builtin_profile(profile.name)
    # A ConfigMap profile is read by the runner from the mounted file; the object stays unset.
    return f"{PERMISSION_PROFILE_DIR}/{profile.key or profile.name}", None


def runconfig_document(server: inputs.Server, *, config: inputs.BuildConfig) -> dict[str, Any]:
    """The RunConfig as a dict, keys in ToolHive's struct order, maps sorted."""
    spec = server.spec
    transport = spec.transport.value
    port = spec.proxy_port
    target_port = spec.effective_mcp_port
    env = {var.name: var.value for var in spec.env}
    # SetTransportEnvironmentVariables: applied after the user's variables, so they always win.
    env["MCP_TRANSPORT"] = transport
    if spec.transport is not models.Transport.STDIO:
        env["MCP_PORT"] = str(target_port)
        env["FASTMCP_PORT"] = str(target_port)
    name_or_path, profile = _permission_profile(spec)

    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if server.generation:
        doc["mcpserver_generation"] = server.generation
    doc["image"] = spec.image
    if spec.args:
        doc["cmd_args"] = list(spec.args)
    doc["name"] = server.name
    # The workload name the runner gives the StatefulSet; MCPServer names are already safe for it.
    doc["container_name"] = server.name
    doc["base_name"] = server.name
    doc["transport"] = transport
    doc["host"] = config.proxy_host
    doc["port"] = port
    doc["target_port"] = target_port
    if name_or_path is not None:
        doc["permission_profile_name_or_path"] = name_or_path
    doc["permission_profile"] = profile
    doc["env_vars"] = meta.sorted_map(env)
    doc["container_labels"] = meta.sorted_map(
        {
            "toolhive": "true",
            "toolhive-name": server.name,
            "toolhive-basename": server.name,
            "toolhive-transport": transport,
            "toolhive-port": str(port),
        }
    )
    if spec.trust_proxy_headers:
        doc["trust_proxy_headers"] = True
    doc["proxy_mode"] = effective_proxy_mode(spec)
    if spec.endpoint_prefix:
        doc["endpoint_prefix"] = spec.endpoint_prefix
    return doc


def render_runconfig(server: inputs.Server, *, config: inputs.BuildConfig) -> str:
    """`runconfig.json` as text: two-space indent like ToolHive's `json.MarshalIndent`, trailing newline.

    orjson writes the same text as `json.dumps(indent=2, ensure_ascii=False)` for this document (no
    floats) ~20x faster (the standard encoder's C speed-up does not indent); what it refuses (integers
    beyond 64 bits, lone surrogates) goes through `json`.
    """
    document = runconfig_document(server, config=config)
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    except TypeError:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def runconfig_labels(server: inputs.Server) -> dict[str, str]:
    """Standard labels plus ToolHive's RunConfig labels (`toolhive.stacklok.io/component: run-config`)."""
    return meta.sorted_map(
        {
            **meta.standard_labels(server),
            constants.LABEL_RUNCONFIG_COMPONENT: "run-config",
            constants.LABEL_RUNCONFIG_SERVER: names.label_value(server.name),
            constants.LABEL_RUNCONFIG_MANAGED_BY: constants.MANAGED_BY,
        }
    )


def content_checksum(data: dict[str, str], labels: dict[str, str]) -> str:
    """SHA-256 over data and labels, each sorted by key (ToolHive's ConfigMap checksum scheme)."""
    digest = hashlib.sha256()
    for mapping in (data, labels):
        for key in sorted(mapping):
            digest.update(key.encode())
            digest.update(mapping[key].encode())
    return digest.hexdigest()


def runconfig_checksum(server: inputs.Server, *, config: inputs.BuildConfig) -> str:
    """The checksum of the ConfigMap `build_runconfig_configmap` returns for the same input."""
    data = {constants.RUNCONFIG_KEY: render_runconfig(server, config=config)}
    return content_checksum(data, runconfig_labels(server))


def build_runconfig_configmap(server: inputs.Server, *, config: inputs.BuildConfig) -> inputs.Manifest:
    """ConfigMap `<name>-runconfig` with `runconfig.json` and its content checksum annotation."""
    data = {constants.RUNCONFIG_KEY: render_runconfig(server, config=config)}
    labels = runconfig_labels(server)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.object_meta(
            server,
            names.runconfig_name(server.name),
            labels=labels,
            annotations={constants.ANNOTATION_CONTENT_CHECKSUM: content_checksum(data, labels)},
        ),
        "data": data,
    }

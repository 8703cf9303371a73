"""The `--k8s-pod-patch` the proxy runner applies to the MCP server's pod template.

Pure: no I/O. Called by `deployment.py`, which passes the JSON as a runner argument. The runner merges it
into the StatefulSet it creates, so this patch is how the operator sets what the MCP server pod runs as:

- `serviceAccountName`: `spec.serviceAccount`, else `<name>-sa` (never the proxy runner's account);
- `spec.secrets` as `secretKeyRef` environment variables of the container named `mcp`;
- `spec.resources` and `spec.volumes` (host paths) on that same container.

All of it is merged into `spec.podTemplateSpec`, the user's own patch. Where both set the same thing the
operator's value wins for identity and secrets (the account and the secret variables are what the spec
asks for), the user's wins for individual resource amounts (the more specific setting), as in ToolHive.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from toolhive import constants, names
from toolhive.api import models
from toolhive.builders import inputs


def mcp_serviceaccount(server: inputs.Server) -> str:
    """The account the MCP server pod runs as."""
    return server.spec.service_account or names.mcp_serviceaccount_name(server.name)


def _resources(spec: models.MCPServerSpec) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    if spec.resources is None:
        return result
    for kind, amounts in (("limits", spec.resources.limits), ("requests", spec.resources.requests)):
        if amounts is None:
            continue
        values = {key: value for key, value in (("cpu", amounts.cpu), ("memory", amounts.memory)) if value}
        if values:
            result[kind] = values
    return result


def _mcp_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec.get("containers")
    if not isinstance(containers, list):
        containers = pod_spec["containers"] = []
    for container in containers:
        if isinstance(container, dict) and container.get("name") == constants.MCP_CONTAINER:
            return container
    container = {"name": constants.MCP_CONTAINER}
    containers.append(container)
    return container


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _replace_by_name(existing: Any, ours: list[dict[str, Any]]) -> list[Any]:
    """`existing` without entries named like one of `ours`, followed by `ours`."""
    taken = {item["name"] for item in ours}
    kept = [item for item in (existing or []) if not (isinstance(item, dict) and item.get("name") in taken)]
    return kept + ours


def build_pod_patch(server: inputs.Server) -> dict[str, Any]:
    """The PodTemplateSpec patch for the MCP server pod (a new dict; the spec is not modified)."""
    spec = server.spec
    template: dict[str, Any] = copy.deepcopy(spec.pod_template_spec) if spec.pod_template_spec else {}
    if not isinstance(template.get("spec"), dict):
        template["spec"] = {}  # `spec: null` in the user's template means "nothing to patch"
    pod_spec: dict[str, Any] = template["spec"]
    pod_spec["serviceAccountName"] = mcp_serviceaccount(server)
    needs_container = spec.secrets or spec.volumes or _resources(spec)
    if not needs_container:
        return template
    container = _mcp_container(pod_spec)

    if spec.secrets:
        env = [
            {"name": secret.env_name, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}}
            for secret in sorted(spec.secrets, key=lambda secret: secret.env_name)
        ]
        container["env"] = _replace_by_name(container.get("env"), env)

    wanted = _resources(spec)
    if wanted:
        given = _as_dict(container.get("resources"))
        merged: dict[str, Any] = dict(given)
        for kind, amounts in wanted.items():
            merged[kind] = {**amounts, **_as_dict(given.get(kind))}
        container["resources"] = merged

    if spec.volumes:
        volumes = [{"name": v.name, "hostPath": {"path": v.host_path}} for v in spec.volumes]
        mounts = [
            {"name": v.name, "mountPath": v.mount_path, **({"readOnly": True} if v.read_only else {})}
            for v in spec.volumes
        ]
        pod_spec["volumes"] = _replace_by_name(pod_spec.get("volumes"), volumes)
        container["volumeMounts"] = _replace_by_name(container.get("volumeMounts"), mounts)
    return template


def render_pod_patch(server: inputs.Server) -> str:
    """The patch as compact JSON with sorted keys: equal specs give byte-identical runner arguments."""
    return json.dumps(build_pod_patch(server), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

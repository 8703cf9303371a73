"""ServiceAccounts: `<name>-proxy-runner` for the proxy, `<name>-sa` for the MCP server pod.

Pure: no I/O. Called by `builders.build_all`. The two identities are never shared (ToolHive #654): the
proxy runner gets a Role (see `rbac.py`), the MCP server's own account gets no RBAC at all and no
automounted token, and is only created when `spec.serviceAccount` does not name an existing one.
"""

from __future__ import annotations

from toolhive import names
from toolhive.builders import inputs, meta


def image_pull_secrets(server: inputs.Server, *, config: inputs.BuildConfig) -> list[dict[str, str]]:
    """Pull secrets of the proxy runner: the server's own first, then the operator-wide defaults.

    Duplicates are dropped (a name the server lists wins, as in ToolHive); empty names are ignored.
    """
    overrides = server.spec.resource_overrides
    deployment = overrides.proxy_deployment if overrides else None
    ordered = [ref.name for ref in deployment.image_pull_secrets] if deployment else []
    ordered.extend(config.image_pull_secrets)
    seen: set[str] = set()
    result: list[dict[str, str]] = []
    for name in ordered:
        if name and name not in seen:
            seen.add(name)
            result.append({"name": name})
    return result


def build_proxy_runner_serviceaccount(
    server: inputs.Server, *, config: inputs.BuildConfig
) -> inputs.Manifest:
    """ServiceAccount `<name>-proxy-runner`, the identity of the proxy runner pods."""
    manifest: inputs.Manifest = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(server, names.proxy_runner_name(server.name)),
    }
    secrets = image_pull_secrets(server, config=config)
    if secrets:
        manifest["imagePullSecrets"] = secrets
    return manifest


def build_mcp_serviceaccount(server: inputs.Server, *, config: inputs.BuildConfig) -> inputs.Manifest | None:
    """ServiceAccount `<name>-sa` for the MCP server pod, or None when `spec.serviceAccount` is set.

    No token is mounted: the MCP server has no business calling the Kubernetes API, and a user who
    wants it to can name their own account in `spec.serviceAccount`.
    """
    if server.spec.service_account:
        return None
    manifest: inputs.Manifest = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.object_meta(server, names.mcp_serviceaccount_name(server.name)),
        "automountServiceAccountToken": False,
    }
    secrets = image_pull_secrets(server, config=config)
    if secrets:
        manifest["imagePullSecrets"] = secrets
    return manifest

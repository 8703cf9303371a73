"""Every object name the operator derives from an MCPServer name, in one place.

Pure: no I/O. Builders, the reconciler, the finalizer and the tests all call these, so a name is spelled
once. The patterns are ToolHive's (`<name>-proxy-runner`, `mcp-<name>-proxy`, ...), so objects move
between the Go operator and this one unchanged. Names that would break a Kubernetes length limit are
truncated with a stable hash suffix instead of being rejected by the API server.

Which limit applies to which kind (Kubernetes API conventions, "Object names and IDs"):

- 63 characters, RFC 1035 label (lowercase alphanumerics and '-', starts with a letter): Service names,
  because they become DNS labels (`mcp-<name>-proxy.<ns>.svc`).
- 63 characters, label value (alphanumerics, '-', '_', '.'; starts and ends alphanumeric): values of
  labels such as `app.kubernetes.io/instance` and `toolhive-name`.
- 253 characters, RFC 1123 subdomain: ServiceAccount, ConfigMap, Deployment, and by our choice Role and
  RoleBinding (their own rule is only "a valid path segment", but keeping every owned name a subdomain
  keeps them printable in any tool).

An MCPServer name is itself a subdomain of at most 253 characters, so only the suffixed names can
overflow, and only the Service name and label values are realistically at risk (a 60-character name).
"""

from __future__ import annotations

import hashlib
from typing import Final

DNS_LABEL_MAX: Final = 63
"""RFC 1035/1123 label and label-value limit."""
DNS_SUBDOMAIN_MAX: Final = 253
"""RFC 1123 subdomain limit (most object names)."""
_HASH_LEN: Final = 8


def fit(candidate: str, *, limit: int) -> str:
    """Return `candidate` unchanged if it fits `limit`, else a stable truncation of it.

    The truncation keeps a prefix and appends `-<8 hex chars of sha256(candidate)>`, so two long names
    that share a prefix still map to different results, and the same input always maps to the same
    output. Separators left dangling at the cut (`-`, `.`, `_`) are dropped so the result still ends
    with an alphanumeric character.
    """
    if limit <= _HASH_LEN + 1:
        raise ValueError(f"limit {limit} leaves no room for a name before the hash suffix")
    if len(candidate) <= limit:
        return candidate
    digest = hashlib.sha256(candidate.encode()).hexdigest()[:_HASH_LEN]
    prefix = candidate[: limit - _HASH_LEN - 1].rstrip("-._")
    return f"{prefix}-{digest}"


def label_value(value: str) -> str:
    """A label value for `value` (an MCPServer name), truncated with a hash past 63 characters."""
    return fit(value, limit=DNS_LABEL_MAX)


def deployment_name(name: str) -> str:
    """The proxy runner Deployment: `<name>` (ToolHive's choice; always fits, names are subdomains)."""
    return fit(name, limit=DNS_SUBDOMAIN_MAX)


def proxy_runner_name(name: str) -> str:
    """ServiceAccount, Role and RoleBinding of the proxy runner: `<name>-proxy-runner`."""
    return fit(f"{name}-proxy-runner", limit=DNS_SUBDOMAIN_MAX)


def mcp_serviceaccount_name(name: str) -> str:
    """The MCP server pod's own ServiceAccount when `spec.serviceAccount` is unset: `<name>-sa`."""
    return fit(f"{name}-sa", limit=DNS_SUBDOMAIN_MAX)


def runconfig_name(name: str) -> str:
    """The RunConfig ConfigMap mounted into the proxy runner: `<name>-runconfig`."""
    return fit(f"{name}-runconfig", limit=DNS_SUBDOMAIN_MAX)


def proxy_service_name(name: str) -> str:
    """The Service in front of the proxy runner: `mcp-<name>-proxy` (a DNS label: 63 characters)."""
    return fit(f"mcp-{name}-proxy", limit=DNS_LABEL_MAX)


def statefulset_name(name: str) -> str:
    """The backend StatefulSet the proxy runner creates: `<name>` (named by the runner, not by us)."""
    return name


def headless_service_name(name: str) -> str:
    """The headless Service the runner creates for HTTP transports: `mcp-<name>-headless`.

    Named by the runner without truncation; the finalizer deletes it by this exact name.
    """
    return f"mcp-{name}-headless"


def backend_service_name(name: str) -> str:
    """The ClusterIP Service the runner creates in front of the backend: `mcp-<name>` (not truncated)."""
    return f"mcp-{name}"

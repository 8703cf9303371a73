"""The in-cluster URL published in `status.url`.

Pure: no I/O. Called by `builders.build_all` (the reconciler writes the result into status). The URL is
ToolHive's (`transport.GenerateMCPServerURL`): `http://mcp-<name>-proxy.<ns>.svc.cluster.local:<proxyPort>`
plus the path of what the proxy speaks to clients: `/mcp` for streamable HTTP, `/sse#<name>` for SSE. For
stdio servers that is decided by `proxyMode`.
"""

from __future__ import annotations

import urllib.parse

from toolhive import names
from toolhive.builders import inputs, runconfig


def transport_path(server: inputs.Server) -> str:
    """`/mcp` or `/sse#<name>`, by the protocol the proxy exposes."""
    if runconfig.effective_proxy_mode(server.spec) == "sse":
        return f"/sse#{urllib.parse.quote(server.name, safe='')}"
    return "/mcp"


def build_url(server: inputs.Server) -> str:
    """The cluster-local URL clients use to reach `server` through its proxy Service."""
    host = f"{names.proxy_service_name(server.name)}.{server.namespace}.svc.cluster.local"
    return f"http://{host}:{server.spec.proxy_port}{transport_path(server)}"

"""The Service `mcp-<name>-proxy` in front of the proxy runner pods.

Pure: no I/O. Called by `builders.build_all`. ClusterIP on `proxyPort` (port and targetPort, named
`http`), selecting the proxy pods by their stable instance labels; `sessionAffinity` from the spec
(ClientIP by default, as MCP sessions are stateful).
"""

from __future__ import annotations

from toolhive import names
from toolhive.builders import inputs, meta


def build_proxy_service(server: inputs.Server, *, config: inputs.BuildConfig) -> inputs.Manifest:
    """Service `mcp-<name>-proxy` for `server`."""
    del config  # same signature as every builder; the Service depends on the spec only
    overrides = server.spec.resource_overrides
    service_overrides = overrides.proxy_service if overrides else None
    port = server.spec.proxy_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(
            server,
            names.proxy_service_name(server.name),
            labels=meta.merged(
                meta.standard_labels(server), service_overrides.labels if service_overrides else None
            ),
            annotations=service_overrides.annotations if service_overrides else None,
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": meta.selector_labels(server),
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
            "sessionAffinity": server.spec.session_affinity.value,
        },
    }

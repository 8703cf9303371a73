"""The resource types the operator reads and writes, as `discovery.kube.Resource` values.

Pure data. `for_manifest` maps a built manifest to its resource so the apply layer needs no per-kind code.
"""

from __future__ import annotations

from typing import Any, Final

from discovery import kube
from toolhive import constants

MCPSERVERS: Final = kube.Resource(
    constants.GROUP, constants.STORAGE_VERSION, constants.MCPSERVER_PLURAL, constants.MCPSERVER_KIND
)
NAMESPACEDISCOVERIES: Final = kube.Resource(
    constants.GROUP, "v1alpha1", "namespacediscoveries", "NamespaceDiscovery", namespaced=False
)
SERVICEACCOUNTS: Final = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")
CONFIGMAPS: Final = kube.Resource("", "v1", "configmaps", "ConfigMap")
SERVICES: Final = kube.Resource("", "v1", "services", "Service")
EVENTS: Final = kube.EVENTS
ROLES: Final = kube.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS: Final = kube.ROLEBINDINGS
DEPLOYMENTS: Final = kube.Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS: Final = kube.Resource("apps", "v1", "statefulsets", "StatefulSet")
LEASES: Final = kube.LEASES

_BY_KIND: Final = {
    (res.api_version, res.kind): res
    for res in (
        MCPSERVERS,
        SERVICEACCOUNTS,
        CONFIGMAPS,
        SERVICES,
        ROLES,
        ROLEBINDINGS,
        DEPLOYMENTS,
        STATEFULSETS,
    )
}


def for_manifest(manifest: dict[str, Any]) -> kube.Resource:
    """The resource of a manifest; KeyError names the apiVersion/kind the operator does not manage."""
    key = (manifest["apiVersion"], manifest["kind"])
    try:
        return _BY_KIND[key]
    except KeyError:
        raise KeyError(f"no resource registered for {key[0]} {key[1]}") from None

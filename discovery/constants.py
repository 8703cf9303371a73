"""Keys discovery writes on what it manages. Pure: no I/O.

The library is generic: nothing here names MCPServer. The owning application passes its own label key
for onboarding and its own ClusterRole and subject through settings.
"""

from typing import Final

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "namespace-discovery"
# Which NamespaceDiscovery object a managed RoleBinding belongs to (several may coexist).
OWNER_LABEL: Final = "discovery.toolhive.stacklok.dev/owner"
# Keeps a grant alive while its namespace terminates, until the grantee released its own finalizers.
GRANT_FINALIZER: Final = "discovery.toolhive.stacklok.dev/grant"
# Set by discovery when a namespace starts leaving; set by the grantee once it let go of the namespace.
DRAINING_ANNOTATION: Final = "discovery.toolhive.stacklok.dev/draining-since"
RELEASED_ANNOTATION: Final = "discovery.toolhive.stacklok.dev/released"
# W3C trace context of the decision that wrote the grant, so the grantee can link its work to it.
TRACEPARENT_ANNOTATION: Final = "discovery.toolhive.stacklok.dev/traceparent"

"""Names shared by every part of the operator: API group, labels, annotations, finalizer, field manager.

Pure: no I/O. Builders, the reconciler, the chart tests and the CRD generator all read these, so a
label or annotation key is spelled exactly once.
"""

from typing import Final

GROUP: Final = "toolhive.stacklok.dev"
STORAGE_VERSION: Final = "v1beta1"
SERVED_VERSIONS: Final = ("v1alpha1", "v1beta1")
MCPSERVER_KIND: Final = "MCPServer"
MCPSERVER_PLURAL: Final = "mcpservers"

# The finalizer ToolHive's Go operator uses, so objects move between the two operators unchanged.
FINALIZER: Final = "mcpserver.toolhive.stacklok.dev/finalizer"
FIELD_MANAGER: Final = "toolhive-operator"
MANAGED_BY: Final = "toolhive-operator"

# Labels ToolHive puts on the proxy Deployment, its pods, the Service and the selector.
LABEL_APP: Final = "app"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_TOOLHIVE: Final = "toolhive"
LABEL_TOOLHIVE_NAME: Final = "toolhive-name"

ANNOTATION_RUNCONFIG_CHECKSUM: Final = "toolhive.stacklok.dev/runconfig-checksum"
ANNOTATION_CONTENT_CHECKSUM: Final = "toolhive.stacklok.dev/content-checksum"
ANNOTATION_GENERATION: Final = "toolhive.stacklok.dev/mcpserver-generation"

# Label that onboards a namespace under the default discovery selector.
NAMESPACE_ENABLED_LABEL: Final = "toolhive.stacklok.dev/enabled"

# What the builders put on every owned object (ToolHive's values, so its tooling recognises them).
API_VERSION: Final = f"{GROUP}/{STORAGE_VERSION}"
APP_VALUE: Final = "mcpserver"
# ToolHive's labels on the RunConfig ConfigMap (note the `.io` domain, as ToolHive spells them).
LABEL_RUNCONFIG_COMPONENT: Final = "toolhive.stacklok.io/component"
LABEL_RUNCONFIG_SERVER: Final = "toolhive.stacklok.io/mcp-server"
LABEL_RUNCONFIG_MANAGED_BY: Final = "toolhive.stacklok.io/managed-by"
RUNCONFIG_KEY: Final = "runconfig.json"
RUNCONFIG_MOUNT_PATH: Final = "/etc/runconfig"
PROXY_CONTAINER: Final = "toolhive"
MCP_CONTAINER: Final = "mcp"
# Downward-API variable through which the runner reads the generation frozen per pod (ToolHive #5360).
ENV_MCPSERVER_GENERATION: Final = "THV_MCPSERVER_GENERATION"

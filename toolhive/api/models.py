"""MCPServer (group `toolhive.stacklok.dev`): pydantic models mirroring ToolHive's CRD.

Pure: no I/O. The reconciler parses watched bodies with `MCPServer.model_validate` (through
`validation.check`), builders read the typed spec, and `crdgen` turns these classes into `crds/`, so the
attribute docstrings below are what `kubectl explain mcpserver.spec.<field>` prints. Field names,
types, enums, defaults and bounds follow ToolHive's `v1beta1` types; fields ToolHive has and this operator
does not implement yet are accepted with a loose schema and listed by `unsupported_fields`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr
from pydantic.alias_generators import to_camel

from toolhive.api import conditions

# ToolHive's container name for the MCP server inside the backend pod; `podTemplateSpec` patches it.
MCP_CONTAINER: Final = "mcp"
BUILTIN_PERMISSION_PROFILES: Final = ("none", "network")
DEFAULT_PROXY_PORT: Final = 8080
DEFAULT_MCP_PORT: Final = 8080

# MCPServerStatus has a field called `conditions`, which would shadow the module inside its class body.
_Condition = conditions.Condition

Int32 = Annotated[int, Strict(), Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Strict(), Field(json_schema_extra={"format": "int64"})]
Port = Annotated[int, Strict(), Field(ge=1, le=65535, json_schema_extra={"format": "int32"})]
FreeForm = dict[str, Any]
StringMap = dict[str, StrictStr]


def _list_map(*keys: str) -> dict[str, Any]:
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


_ATOMIC: Final[dict[str, Any]] = {"x-kubernetes-list-type": "atomic"}


class _Model(BaseModel):
    """Closed, immutable object: unknown keys are errors, as the API server prunes or rejects them."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )


class Transport(enum.StrEnum):
    """How the MCP server speaks MCP."""

    STDIO = "stdio"
    STREAMABLE_HTTP = "streamable-http"
    SSE = "sse"


class ProxyMode(enum.StrEnum):
    """What the proxy exposes in front of a stdio server."""

    SSE = "sse"
    STREAMABLE_HTTP = "streamable-http"


class SessionAffinity(enum.StrEnum):
    """Service session affinity."""

    CLIENT_IP = "ClientIP"
    NONE = "None"


class PermissionProfileType(enum.StrEnum):
    """Where a permission profile comes from."""

    BUILTIN = "builtin"
    CONFIGMAP = "configmap"


class Phase(enum.StrEnum):
    """Lifecycle phase of an MCPServer."""

    PENDING = "Pending"
    READY = "Ready"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    STOPPED = "Stopped"


class EnvVar(_Model):
    """A plain environment variable (name and literal value)."""

    name: StrictStr
    """Name of the environment variable."""
    value: StrictStr
    """Literal value of the environment variable."""


class Volume(_Model):
    """A host path mounted into the MCP server container."""

    name: StrictStr
    """Volume name, unique within the list."""
    host_path: StrictStr
    """Absolute path on the node to mount."""
    mount_path: StrictStr
    """Absolute path inside the container where the volume appears."""
    read_only: StrictBool = False
    """Mount the volume read-only."""


class ResourceList(_Model):
    """CPU and memory amounts, as Kubernetes quantities."""

    cpu: StrictStr | None = None
    """CPU in cores, as a Kubernetes quantity (for example "500m" for half a core)."""
    memory: StrictStr | None = None
    """Memory in bytes, as a Kubernetes quantity (for example "64Mi")."""


class ResourceRequirements(_Model):
    """Compute resources of the MCP server container."""

    limits: ResourceList | None = None
    """Most the container may use."""
    requests: ResourceList | None = None
    """Least the container is scheduled with."""


class SecretRef(_Model):
    """A key of a Secret, injected into the `mcp` container as an environment variable."""

    name: StrictStr
    """Name of the Secret, in the MCPServer's namespace."""
    key: StrictStr
    """Key inside the Secret."""
    target_env_name: StrictStr | None = None
    """Environment variable that receives the value; defaults to the key."""

    @property
    def env_name(self) -> str:
        """The environment variable name actually used: `targetEnvName`, else `key`."""
        return self.target_env_name or self.key


class PermissionProfileRef(_Model):
    """Which permission profile (filesystem and network permissions) the MCP server runs with."""

    type: PermissionProfileType = PermissionProfileType.BUILTIN
    """builtin: a profile shipped with ToolHive; configmap: a profile stored in a ConfigMap."""
    name: StrictStr
    """For builtin, one of "none" or "network"; for configmap, the ConfigMap's name."""
    key: StrictStr | None = None
    """Key in the ConfigMap holding the profile (configmap only)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'builtin' || self.name in ['none', 'network']",
                    "message": "name must be 'none' or 'network' when type is 'builtin'",
                }
            ]
        }
    )


class ResourceMetadataOverrides(_Model):
    """Extra labels and annotations for an object the operator creates."""

    annotations: StringMap | None = None
    """Annotations to add or override."""
    labels: StringMap | None = None
    """Labels to add or override."""


class LocalObjectReference(_Model):
    """A reference to an object in the same namespace, by name."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    name: StrictStr = ""
    """Name of the referent."""


class ProxyDeploymentOverrides(_Model):
    """Overrides for the proxy runner Deployment."""

    annotations: StringMap | None = None
    """Annotations to add or override on the Deployment."""
    labels: StringMap | None = None
    """Labels to add or override on the Deployment."""
    pod_template_metadata_overrides: ResourceMetadataOverrides | None = None
    """Labels and annotations for the proxy runner pods."""
    env: list[EnvVar] = Field(default_factory=list, json_schema_extra=_list_map("name"))
    """Environment variables of the proxy container itself, not of the MCP server (for example
    TOOLHIVE_DEBUG=true for debug logging)."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, json_schema_extra=_ATOMIC)
    """Image pull secrets for the proxy runner, set on its Deployment and its ServiceAccount."""


class ResourceOverrides(_Model):
    """Metadata and environment overrides for the objects the operator creates."""

    proxy_deployment: ProxyDeploymentOverrides | None = None
    """Overrides for the proxy runner Deployment."""
    proxy_service: ResourceMetadataOverrides | None = None
    """Overrides for the Service in front of the proxy runner."""


_NOT_IMPLEMENTED = (
    " Accepted so that ToolHive manifests apply unchanged, but not implemented by this operator: "
    "it is listed in the UnsupportedFields condition."
)
_FAILS_CLOSED = (
    " Accepted so that ToolHive manifests apply unchanged, but not implemented by this operator: a server "
    "that sets it is not deployed (phase Failed) rather than run without the protection it asks for."
)


def _unsupported(summary: str, *, fails_closed: bool, loose_object: bool = True, **field: Any) -> Any:
    """A ToolHive field we accept without acting on it; objects keep a loose schema (see README)."""
    if loose_object:
        field["json_schema_extra"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    description = summary + (_FAILS_CLOSED if fails_closed else _NOT_IMPLEMENTED)
    return Field(None, description=description, **field)


class MCPServerSpec(_Model):
    """Desired state of an MCPServer: the MCP server container and the proxy runner in front of it."""

    image: StrictStr
    """Container image of the MCP server."""
    transport: Transport = Transport.STDIO
    """How the MCP server speaks MCP: stdio (the proxy attaches to the container's stdin/stdout),
    streamable-http or sse (the proxy forwards HTTP to mcpPort). Default stdio."""
    proxy_mode: ProxyMode = ProxyMode.STREAMABLE_HTTP
    """What the proxy exposes to clients for a stdio server: streamable-http or sse. Ignored for the
    HTTP transports, which are exposed as they are. Default streamable-http."""
    proxy_port: Port = DEFAULT_PROXY_PORT
    """Port the proxy runner listens on; the Service exposes the same port. Default 8080."""
    mcp_port: Port | None = None
    """Port the MCP server itself listens on (HTTP transports); 8080 when unset."""
    args: list[StrictStr] = Field(default_factory=list, json_schema_extra=_ATOMIC)
    """Extra arguments passed to the MCP server."""
    env: list[EnvVar] = Field(default_factory=list, json_schema_extra=_list_map("name"))
    """Environment variables of the MCP server container."""
    volumes: list[Volume] = Field(default_factory=list, json_schema_extra=_list_map("name"))
    """Host-path volumes mounted into the MCP server container."""
    resources: ResourceRequirements | None = None
    """Compute resources of the MCP server container."""
    secrets: list[SecretRef] = Field(default_factory=list, json_schema_extra=_list_map("name"))
    """Secret keys injected as environment variables into the MCP server container."""
    service_account: StrictStr | None = None
    """Existing ServiceAccount for the MCP server pod. When unset, the operator creates `<name>-sa`, with no
    RBAC and no token automount. Never the proxy runner's identity."""
    permission_profile: PermissionProfileRef | None = None
    """Permission profile (filesystem and network permissions) of the MCP server."""
    pod_template_spec: FreeForm | None = Field(
        None, json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    """A PodTemplateSpec merged into the MCP server's pod, for anything the other fields do not cover.
    The MCP server's own container is the one named `mcp`; other containers are added next to it and
    need an image."""
    resource_overrides: ResourceOverrides | None = None
    """Labels, annotations, environment and pull secrets for the objects the operator creates."""
    trust_proxy_headers: StrictBool = False
    """Trust X-Forwarded-Proto, -Host, -Port and -Prefix from a reverse proxy when building endpoint URLs."""
    endpoint_prefix: StrictStr | None = None
    """Path prefix added to SSE endpoint URLs, for ingresses that strip a prefix before forwarding."""
    session_affinity: SessionAffinity = SessionAffinity.CLIENT_IP
    """Service session affinity. MCP sessions are stateful, hence ClientIP; use None for stateless servers
    or behind a load balancer with its own affinity. Default ClientIP."""
    replicas: Int32 | None = Field(None, ge=0)
    """Replicas of the proxy runner Deployment. Unset leaves the count to an autoscaler; stdio servers run
    at most one."""

    # ToolHive fields this operator accepts but does not implement (see `unsupported_fields`).
    oidc_config_ref: FreeForm | None = _unsupported(
        "OIDC authentication through a shared MCPOIDCConfig in the same namespace.", fails_closed=True
    )
    authz_config: FreeForm | None = _unsupported(
        "Inline or ConfigMap-based Cedar authorization policy.", fails_closed=True
    )
    authz_config_ref: FreeForm | None = _unsupported(
        "Authorization through a shared MCPAuthzConfig in the same namespace.", fails_closed=True
    )
    audit: FreeForm | None = _unsupported("Audit logging of MCP requests.", fails_closed=False)
    tool_config_ref: FreeForm | None = _unsupported(
        "Tool filtering and renaming through an MCPToolConfig in the same namespace.", fails_closed=True
    )
    external_auth_config_ref: FreeForm | None = _unsupported(
        "External authentication (token exchange, header injection) through an MCPExternalAuthConfig.",
        fails_closed=True,
    )
    webhook_config_ref: FreeForm | None = _unsupported(
        "Webhook middleware through an MCPWebhookConfig in the same namespace.", fails_closed=True
    )
    auth_server_ref: FreeForm | None = _unsupported(
        "Embedded OAuth 2.0/OIDC authorization server configured by an MCPExternalAuthConfig.",
        fails_closed=True,
    )
    telemetry_config_ref: FreeForm | None = _unsupported(
        "Shared OpenTelemetry settings of the proxy through an MCPTelemetryConfig.", fails_closed=False
    )
    group_ref: FreeForm | None = _unsupported("MCPGroup this server belongs to.", fails_closed=False)
    backend_replicas: Int32 | None = _unsupported(
        "Replicas of the MCP server backend.", fails_closed=False, loose_object=False, ge=0
    )
    session_storage: FreeForm | None = _unsupported(
        "Session storage (memory or Redis) for horizontal scaling.", fails_closed=False
    )
    rate_limiting: FreeForm | None = _unsupported("Rate limiting of MCP requests.", fails_closed=True)
    proxy_read_timeout: StrictStr | None = _unsupported(
        "Time the proxy spends reading a whole request (Go duration, for example 1m).",
        fails_closed=False,
        loose_object=False,
        json_schema_extra={"format": "duration"},
    )
    proxy_write_timeout: StrictStr | None = _unsupported(
        "Time the proxy spends writing a response, SSE only (Go duration).",
        fails_closed=False,
        loose_object=False,
        json_schema_extra={"format": "duration"},
    )

    @property
    def effective_mcp_port(self) -> int:
        """`mcpPort`, or ToolHive's fallback 8080."""
        return self.mcp_port or DEFAULT_MCP_PORT


# Python names of the fields above that are accepted but not implemented, and the subset whose absence
# would weaken security (authentication, authorization, tool filtering, rate limits): those fail closed.
UNSUPPORTED_FIELDS: Final = frozenset(
    {
        "oidc_config_ref",
        "authz_config",
        "authz_config_ref",
        "audit",
        "tool_config_ref",
        "external_auth_config_ref",
        "webhook_config_ref",
        "auth_server_ref",
        "telemetry_config_ref",
        "group_ref",
        "backend_replicas",
        "session_storage",
        "rate_limiting",
        "proxy_read_timeout",
        "proxy_write_timeout",
    }
)
FAIL_CLOSED_FIELDS: Final = frozenset(
    {
        "oidc_config_ref",
        "authz_config",
        "authz_config_ref",
        "tool_config_ref",
        "external_auth_config_ref",
        "webhook_config_ref",
        "auth_server_ref",
        "rate_limiting",
    }
)


def unsupported_fields(spec: MCPServerSpec) -> list[str]:
    """Manifest names (camelCase, sorted) of the accepted-but-unimplemented fields this spec sets."""
    fields = MCPServerSpec.model_fields
    return sorted(
        fields[name].alias or name for name in UNSUPPORTED_FIELDS if getattr(spec, name) is not None
    )


class MCPServerStatus(BaseModel):
    """Observed state of an MCPServer, written by the operator."""

    # Tolerant on read: status written by ToolHive's Go operator carries hashes we do not use.
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    phase: Phase | None = None
    """Current phase: Pending, Ready, Failed, Terminating or Stopped (scaled to zero)."""
    conditions: list[_Condition] = Field(default_factory=list, json_schema_extra=_list_map("type"))
    """Latest observations of the MCPServer (Ready, PodTemplateValid, SpecValid, UnsupportedFields)."""
    url: StrictStr | None = None
    """In-cluster URL where clients reach the MCP server through the proxy."""
    observed_generation: Int64 | None = None
    """The `.metadata.generation` the operator last acted on."""
    message: StrictStr | None = None
    """Human-readable detail about the current phase."""
    ready_replicas: Int32 | None = None
    """Number of ready proxy runner replicas."""


class MCPServer(_Model):
    """An MCP server run by ToolHive: a proxy runner Deployment and Service in front of the server."""

    api_version: StrictStr = "toolhive.stacklok.dev/v1beta1"
    """Versioned schema of this object."""
    kind: StrictStr = "MCPServer"
    """Kind of this object."""
    metadata: FreeForm = Field(default_factory=dict)
    """Standard object metadata."""
    # spec and status take their descriptions from their classes' docstrings.
    spec: MCPServerSpec
    status: MCPServerStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def generation(self) -> int | None:
        value = self.metadata.get("generation")
        return value if isinstance(value, int) else None

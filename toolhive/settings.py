"""The one settings model for both processes (operator and discovery).

Built from the environment (the chart sets these variables) by pydantic-settings; the CLI may override
single fields. Every field carries a description that feeds `toolhive-operator settings` and the chart
docs. Nothing else in the code reads the environment, except OpenTelemetry's own `OTEL_*` variables,
which `telemetry.py` hands to the SDK unchanged.

ToolHive-compatible names are kept where they exist: `WATCH_NAMESPACE`, `TOOLHIVE_RUNNER_IMAGE`,
`POD_NAMESPACE`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Scope(enum.StrEnum):
    """Where the operator acts (ToolHive's `operator.rbac.scope`)."""

    CLUSTER = "cluster"
    NAMESPACE = "namespace"


class LogFormat(enum.StrEnum):
    JSON = "json"
    TEXT = "text"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _split_csv(value: Any) -> Any:
    """Accept `a,b` (ToolHive's WATCH_NAMESPACE form) as well as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class RbacSettings(_Group):
    scope: Scope = Field(
        Scope.CLUSTER,
        description="cluster: act in every namespace; namespace: act only where bound "
        "(static list and/or discovered namespaces).",
    )
    watch_namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Static namespace list served in namespace scope (ToolHive's WATCH_NAMESPACE).",
    )

    _split = field_validator("watch_namespaces", mode="before")(_split_csv)


class DiscoverySettings(_Group):
    enabled: bool = Field(
        False,
        description="Follow the membership that the discovery process publishes (namespace scope only).",
    )
    resource_name: str = Field(
        "toolhive-operator",
        pattern=DNS_LABEL,
        description="Name of the cluster-scoped NamespaceDiscovery object to serve and publish.",
    )
    cluster_role: str = Field(
        "toolhive-operator-manager-role",
        description="ClusterRole that discovery binds in every member namespace.",
    )
    subject_name: str = Field(
        "toolhive-operator",
        description="ServiceAccount that discovery binds in every member namespace.",
    )
    subject_namespace: str = Field(
        "toolhive-system",
        description="Namespace of that ServiceAccount.",
    )
    rolebinding_name: str = Field(
        "toolhive-operator",
        pattern=DNS_LABEL,
        description="Name of the RoleBinding discovery manages in each member namespace.",
    )
    release_grace_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How long discovery waits for the operator to release a draining namespace "
        "before it revokes the RoleBinding anyway.",
    )


class OperatorSettings(_Group):
    runner_image: str = Field(
        "ghcr.io/stacklok/toolhive/proxyrunner:latest",
        description="Image of the ToolHive proxy runner (ToolHive's TOOLHIVE_RUNNER_IMAGE).",
    )
    max_concurrent_reconciles: int = Field(
        16, ge=1, le=256, description="Reconciles of different MCPServers that may run at once."
    )
    resync_seconds: float = Field(
        300.0,
        ge=0,
        description="Period of the full resync that repairs drift in unwatched objects (0: never).",
    )
    image_pull_secrets: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Image pull secrets added to every proxy runner ServiceAccount."
    )

    _split = field_validator("image_pull_secrets", mode="before")(_split_csv)


class LeaderElectionSettings(_Group):
    enabled: bool = Field(False, description="Elect one active replica through a coordination.k8s.io Lease.")
    lease_duration_seconds: float = Field(15.0, gt=0, description="How long a lease is valid unrenewed.")
    renew_seconds: float = Field(5.0, gt=0, description="How often the leader renews its lease.")


class ObservabilitySettings(_Group):
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level.")
    log_format: LogFormat = Field(LogFormat.JSON, description="json (one object a line) or text.")
    metrics_port: int = Field(8080, ge=0, le=65535, description="Prometheus /metrics port (0: off).")
    health_port: int = Field(8081, ge=0, le=65535, description="/healthz and /readyz port (0: off).")


class Settings(BaseSettings):
    """All configuration, grouped. Environment names are `TOOLHIVE_<GROUP>__<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLHIVE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    pod_namespace: str = Field(
        "toolhive-system",
        validation_alias=AliasChoices("POD_NAMESPACE", "TOOLHIVE_POD_NAMESPACE"),
        description="Namespace the process runs in (leases, events about itself).",
    )
    pod_name: str = Field(
        "",
        validation_alias=AliasChoices("POD_NAME", "TOOLHIVE_POD_NAME"),
        description="Pod name, used as leader-election identity and resource attribute.",
    )
    kubeconfig: str | None = Field(
        None,
        validation_alias=AliasChoices("KUBECONFIG", "TOOLHIVE_KUBECONFIG"),
        description="Kubeconfig to use outside a cluster; in a pod the ServiceAccount is used.",
    )
    rbac: RbacSettings = RbacSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    operator: OperatorSettings = OperatorSettings()
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    watch_namespace: str | None = Field(
        None,
        validation_alias=AliasChoices("WATCH_NAMESPACE"),
        exclude=True,
        description="ToolHive's WATCH_NAMESPACE (comma-separated); fills rbac.watch_namespaces when set.",
    )

    @model_validator(mode="before")
    @classmethod
    def _adopt_watch_namespace(cls, data: Any) -> Any:
        if isinstance(data, dict):
            legacy = data.get("WATCH_NAMESPACE") or data.get("watch_namespace")
            rbac = dict(data.get("rbac") or {})
            if legacy and not rbac.get("watch_namespaces"):
                rbac["watch_namespaces"] = legacy
                data = {**data, "rbac": rbac}
        return data

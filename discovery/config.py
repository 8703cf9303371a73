"""Discovery's own configuration: which custom resource to serve and what every grant binds.

Pure data, no I/O. The owning application builds one `Config` from its settings (the CLI does, from
`toolhive.settings`) and hands it to `discovery.run`; nothing here reads the environment. The ClusterRole
and the subject are settings on purpose: whoever may edit the NamespaceDiscovery object chooses *where* the
grantee acts, never *what* it may do there.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from discovery import bindings, kube, models


def discovery_resource(group: str, version: str, plural: str = models.PLURAL) -> kube.Resource:
    """The NamespaceDiscovery resource type under the caller's API group (the library names no group)."""
    return kube.Resource(group, version, plural, models.KIND, namespaced=False)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything the discovery process needs besides API credentials."""

    resource: kube.Resource
    """The NamespaceDiscovery resource type (cluster-scoped); see `discovery_resource`."""
    cluster_role: str
    """ClusterRole bound in every member namespace; discovery needs `bind` on exactly this name."""
    subject_name: str
    """ServiceAccount the grants bind (the grantee)."""
    subject_namespace: str
    """Namespace of that ServiceAccount."""
    name: str = models.DEFAULT_NAME
    """The NamespaceDiscovery object to serve; also the owner label on every grant it writes."""
    rolebinding_name: str = "toolhive-operator"
    """Name of the RoleBinding in each member namespace."""
    grace_seconds: float = 30.0
    """How long a draining namespace waits for the grantee's release before the grant is revoked anyway."""
    component: str = "namespace-discovery"
    """Reporting component of the Events discovery posts."""
    instance: str = ""
    """Reporting instance of those Events (the pod name when there is one)."""
    protected: tuple[str, ...] = models.DEFAULT_DENY_NAMESPACES
    """Namespaces never selected, whatever the custom resource says."""
    events_namespace: str = "default"
    """Where Events about cluster-scoped objects (Namespaces, the custom resource) go, as in client-go."""

    def __post_init__(self) -> None:
        for field in ("cluster_role", "subject_name", "subject_namespace", "name", "rolebinding_name"):
            if not getattr(self, field):
                raise ValueError(f"discovery config: {field} must not be empty")
        if self.grace_seconds <= 0:
            raise ValueError(f"discovery config: grace_seconds must be positive, got {self.grace_seconds}")
        if self.resource.namespaced:
            raise ValueError(f"discovery config: resource {self.resource.plural} must be cluster-scoped")

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_seconds)

    @property
    def template(self) -> bindings.GrantTemplate:
        return bindings.GrantTemplate(
            name=self.rolebinding_name,
            cluster_role=self.cluster_role,
            subject_name=self.subject_name,
            subject_namespace=self.subject_namespace,
            owner=self.name,
        )

    @property
    def managed_selector(self) -> str:
        """The `labelSelector` that lists exactly the RoleBindings this owner manages."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.template.labels.items()))

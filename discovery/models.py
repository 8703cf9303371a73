"""Pydantic models of the NamespaceDiscovery custom resource: its spec (what to select) and status.

Pure: no I/O. The CRD generator turns these into the cluster-scoped CRD's structural schema (plain types,
camelCase aliases, descriptions), so keep them free of unions and free-form fields. The API group is the
caller's: nothing here names it. Selectors are deliberately loose (operator is a string): an invalid selector
must reach `policy.py`, which fails it closed and says why in status, instead of being rejected unseen.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

KIND: Final = "NamespaceDiscovery"
PLURAL: Final = "namespacediscoveries"
SINGULAR: Final = "namespacediscovery"
SHORT_NAMES: Final = ("nsd",)
CATEGORIES: Final = ("toolhive",)
SCOPE: Final = "Cluster"
DEFAULT_NAME: Final = "toolhive-operator"
# Never selected, whatever their labels; also the default deny list.
DEFAULT_DENY_NAMESPACES: Final = ("kube-system", "kube-public", "kube-node-lease")

# Columns for `kubectl get nsd` (CRD additionalPrinterColumns, in order).
PRINTER_COLUMNS: Final = (
    {"name": "Members", "type": "integer", "jsonPath": ".status.memberCount"},
    {"name": "Pending", "type": "integer", "jsonPath": ".status.pendingCount"},
    {"name": "Draining", "type": "integer", "jsonPath": ".status.drainingCount"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

NamespaceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="A namespace name (RFC 1123 label).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class LabelSelectorRequirement(_Model):
    """One requirement of a LabelSelector: `key`, `operator` and `values`, exactly as in Kubernetes."""

    key: str = Field(description="The label key the requirement applies to.")
    operator: str = Field(
        description="In, NotIn, Exists or DoesNotExist. Any other value makes the whole selector invalid "
        "(it then selects nothing)."
    )
    values: list[str] = Field(
        default_factory=list,
        description="Label values: non-empty for In and NotIn, empty for Exists and DoesNotExist.",
    )


class LabelSelector(_Model):
    """A Kubernetes LabelSelector; all of its requirements must match (AND).

    An empty selector is refused (selects nothing) rather than read as "every namespace".
    """

    match_labels: dict[str, str] = Field(
        default_factory=dict,
        alias="matchLabels",
        description="Labels a namespace must carry with exactly these values (each is an `In` requirement).",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        alias="matchExpressions",
        description="Set-based requirements (In, NotIn, Exists, DoesNotExist), all of which must match.",
    )


class NamespaceDiscoverySpec(_Model):
    """Which namespaces are members: `(any selector | namespaces) - denyNamespaces - terminating`."""

    selectors: list[LabelSelector] = Field(
        default_factory=list,
        description="Label selectors, ORed: a namespace matching any one of them is selected. None given: "
        "nothing is selected by label. An invalid or empty selector selects nothing and is reported in "
        "the SelectorsValid condition; the other selectors still apply.",
    )
    namespaces: list[NamespaceName] = Field(
        default_factory=list,
        description="Namespaces that are members whatever their labels (once they exist).",
    )
    deny_namespaces: list[NamespaceName] = Field(
        default=list(DEFAULT_DENY_NAMESPACES),  # a plain default so the CRD shows it; pydantic copies it
        alias="denyNamespaces",
        description="Namespaces that are never members, whatever their labels or the static list. "
        "kube-system, kube-public and kube-node-lease stay protected even when removed from this list.",
    )


class Condition(_Model):
    """A status condition in the Kubernetes shape (metav1.Condition)."""

    type: str = Field(description="Condition type: Ready or SelectorsValid.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason, machine-readable.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: str = Field(
        alias="lastTransitionTime",
        json_schema_extra={"format": "date-time"},
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int = Field(
        0, ge=0, alias="observedGeneration", description="The spec generation this condition describes."
    )


class NamespaceDiscoveryStatus(_Model):
    """Published membership: where the grantee may act (members) and where it must let go (draining)."""

    observed_generation: int = Field(
        0, ge=0, alias="observedGeneration", description="The spec generation this status describes."
    )
    members: list[str] = Field(
        default_factory=list, description="Namespaces whose grant is in place (sorted)."
    )
    pending: list[str] = Field(
        default_factory=list, description="Selected namespaces whose grant is not confirmed yet (sorted)."
    )
    draining: list[str] = Field(
        default_factory=list,
        description="Namespaces leaving the set: the grantee must release its finalizers there (sorted).",
    )
    member_count: int = Field(0, ge=0, alias="memberCount", description="Number of members.")
    pending_count: int = Field(0, ge=0, alias="pendingCount", description="Number of pending namespaces.")
    draining_count: int = Field(0, ge=0, alias="drainingCount", description="Number of draining namespaces.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready (membership converged) and SelectorsValid."
    )

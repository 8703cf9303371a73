"""The resource catalogue of the loopback API: built-in kinds, CRD-defined kinds, discovery documents.

Pure: no I/O. Called by the loopback store and server. A `ResourceType` is one (group, version,
plural) view; several versions of a CRD share one storage `key` (group, plural), as in etcd.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from toolhive.testing import _patches

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status: bool = False  # has a /status subresource
    subresources: tuple[str, ...] = ()  # other subresources (e.g. "token")
    generation: bool = False  # metadata.generation tracked and bumped on spec changes
    name_rule: str = "subdomain"  # see _validation.NAME_RULES
    strategy: _patches.Strategy | None = None  # strategic merge patch; None = unsupported (CRDs)
    schema: Mapping[str, Any] | None = None  # CRD openAPIV3Schema
    crd: str = ""  # owning CRD name, "" for built-ins
    field_selectors: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})
    virtual: bool = False  # create-only review kinds, never stored

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def discovery_entries(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        out = [entry]
        if self.status:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": list(STATUS_VERBS),
                }
            )
        if "token" in self.subresources:
            out.append(
                {
                    "name": f"{self.plural}/token",
                    "singularName": "",
                    "namespaced": True,
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                }
            )
        return out


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, **kw)


_EVENT_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
_POD_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)

BUILTINS: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        status=True,
        name_rule="label",
        strategy=_patches.NAMESPACE,
        field_selectors=frozenset({"metadata.name", "status.phase"}),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _rt(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        short_names=("sa",),
        subresources=("token",),
        strategy=_patches.SERVICE_ACCOUNT,
    ),
    _rt("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",), strategy=_patches.DEFAULT),
    _rt(
        "",
        "v1",
        "secrets",
        "Secret",
        True,
        strategy=_patches.DEFAULT,
        field_selectors=frozenset({"metadata.name", "metadata.namespace", "type"}),
    ),
    _rt(
        "",
        "v1",
        "services",
        "Service",
        True,
        short_names=("svc",),
        categories=("all",),
        status=True,
        name_rule="dns1035",
        strategy=_patches.SERVICE,
    ),
    _rt(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        status=True,
        strategy=_patches.POD,
        field_selectors=_POD_FIELDS,
    ),
    _rt(
        "",
        "v1",
        "events",
        "Event",
        True,
        short_names=("ev",),
        strategy=_patches.DEFAULT,
        field_selectors=_EVENT_FIELDS,
    ),
    _rt(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        status=True,
        generation=True,
        strategy=_patches.WORKLOAD,
    ),
    _rt(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        short_names=("sts",),
        categories=("all",),
        status=True,
        generation=True,
        strategy=_patches.WORKLOAD,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        True,
        name_rule="segment",
        strategy=_patches.DEFAULT,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        False,
        name_rule="segment",
        strategy=_patches.DEFAULT,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        True,
        name_rule="segment",
        strategy=_patches.DEFAULT,
    ),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        name_rule="segment",
        strategy=_patches.DEFAULT,
    ),
    _rt("coordination.k8s.io", "v1", "leases", "Lease", True, strategy=_patches.DEFAULT),
    _rt("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",), strategy=_patches.DEFAULT),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        status=True,
        generation=True,
        strategy=_patches.DEFAULT,
    ),
    _rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
        virtual=True,
    ),
    _rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        verbs=("create",),
        virtual=True,
    ),
    _rt(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        verbs=("create",),
        virtual=True,
    ),
)

_VERSION = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first; others last, by name."""
    m = _VERSION.match(version)
    if not m:
        return (0, 0, 0, version)
    stage = {"": 3, "beta": 2, "alpha": 1}[m.group(2) or ""]
    return (stage, int(m.group(1)), int(m.group(3) or 0), "")


def crd_resource_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a (validated) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subresources,
                generation=True,
                strategy=None,
                schema=(version.get("schema") or {}).get("openAPIV3Schema") or {},
                crd=crd["metadata"]["name"],
            )
        )
    return out


def group_discovery(group: str, versions: Iterable[str]) -> dict[str, Any]:
    ordered = sorted(set(versions), key=version_priority, reverse=True)
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}

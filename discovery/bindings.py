"""The grant: the RoleBinding discovery owns in each member namespace, built and inspected as plain dicts.

Pure: no I/O, no clock (timestamps arrive as arguments). Called by `membership.py` to build desired
bindings, to tell ours from everyone else's and to spot drift; `grants.py` only sends what comes out.
A RoleBinding is ours only when both the managed-by label and our owner label say so; nothing here ever
proposes a change to any other RoleBinding.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from discovery import constants

Manifest = dict[str, Any]

RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"
# Annotations discovery owns on its grant: it writes the first, clears both when the namespace returns.
_HANDSHAKE_ANNOTATIONS = (constants.DRAINING_ANNOTATION, constants.RELEASED_ANNOTATION)


@dataclasses.dataclass(frozen=True)
class GrantTemplate:
    """What every grant binds, from discovery's settings (never from the custom resource).

    `owner` is the NamespaceDiscovery object's name; it becomes the owner label, so several discovery
    objects can coexist without touching each other's bindings.
    """

    name: str
    cluster_role: str
    subject_name: str
    subject_namespace: str
    owner: str

    @property
    def labels(self) -> dict[str, str]:
        return {constants.MANAGED_BY_LABEL: constants.MANAGED_BY_VALUE, constants.OWNER_LABEL: self.owner}

    @property
    def role_ref(self) -> dict[str, str]:
        return {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": self.cluster_role}

    @property
    def subjects(self) -> list[dict[str, str]]:
        return [{"kind": "ServiceAccount", "name": self.subject_name, "namespace": self.subject_namespace}]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, the form Kubernetes uses (`2026-01-02T03:04:05Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """The inverse of `format_time`, tolerant of fractions and offsets; None when not a timestamp."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_grant(
    namespace: str,
    *,
    template: GrantTemplate,
    draining_since: datetime | None = None,
    traceparent: str | None = None,
) -> Manifest:
    """The desired grant in `namespace`, ready to create: labels, finalizer, roleRef, one subject.

    `draining_since` adds the draining annotation; `traceparent` (W3C) links the grantee's work to the
    decision that wrote it. Same input, same output.
    """
    annotations: dict[str, str] = {}
    if draining_since is not None:
        annotations[constants.DRAINING_ANNOTATION] = format_time(draining_since)
    if traceparent:
        annotations[constants.TRACEPARENT_ANNOTATION] = traceparent
    metadata: dict[str, Any] = {
        "name": template.name,
        "namespace": namespace,
        "labels": template.labels,
        "finalizers": [constants.GRANT_FINALIZER],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": "RoleBinding",
        "metadata": metadata,
        "roleRef": template.role_ref,
        "subjects": template.subjects,
    }


def is_managed(rolebinding: Mapping[str, Any], *, owner: str) -> bool:
    """True only when the binding carries both our managed-by label and `owner` as owner label."""
    labels = _metadata(rolebinding).get("labels") or {}
    return bool(
        labels.get(constants.MANAGED_BY_LABEL) == constants.MANAGED_BY_VALUE
        and labels.get(constants.OWNER_LABEL) == owner
    )


def managed_selector(owner: str) -> str:
    """The `labelSelector` that lists exactly the RoleBindings `owner` manages (for the gather step)."""
    return f"{constants.MANAGED_BY_LABEL}={constants.MANAGED_BY_VALUE},{constants.OWNER_LABEL}={owner}"


def is_deleting(rolebinding: Mapping[str, Any]) -> bool:
    return bool(_metadata(rolebinding).get("deletionTimestamp"))


def has_finalizer(rolebinding: Mapping[str, Any]) -> bool:
    return constants.GRANT_FINALIZER in (_metadata(rolebinding).get("finalizers") or [])


def draining_since(rolebinding: Mapping[str, Any]) -> str | None:
    """The raw draining annotation (None when absent); parse it with `parse_time`."""
    value = (_metadata(rolebinding).get("annotations") or {}).get(constants.DRAINING_ANNOTATION)
    return value if isinstance(value, str) else None


def is_released(rolebinding: Mapping[str, Any]) -> bool:
    """True when the grantee confirmed it let go of the namespace (annotation value exactly "true")."""
    annotations = _metadata(rolebinding).get("annotations") or {}
    return annotations.get(constants.RELEASED_ANNOTATION) == "true"


def grants_access(rolebinding: Mapping[str, Any], *, template: GrantTemplate) -> bool:
    """True when roleRef and subjects are what we bind: the grantee can act through this binding."""
    return not access_drift(rolebinding, template=template)


def access_drift(rolebinding: Mapping[str, Any], *, template: GrantTemplate) -> tuple[str, ...]:
    """Fields that change what the binding grants: `roleRef` (immutable: recreate) and `subjects`."""
    drift = []
    if _normal_role_ref(rolebinding.get("roleRef")) != template.role_ref:
        drift.append("roleRef")
    if _normal_subjects(rolebinding.get("subjects")) != template.subjects:
        drift.append("subjects")
    return tuple(drift)


def metadata_drift(
    rolebinding: Mapping[str, Any], *, template: GrantTemplate, draining: bool
) -> tuple[str, ...]:
    """Fields we own in metadata that differ from desired: our labels, our finalizer, handshake annotations.

    `draining` says whether the binding should carry the draining annotation. A `released` annotation on a
    binding that is not draining is drift too: it would let a later revoke skip the handshake.
    """
    metadata = _metadata(rolebinding)
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    drift = [f"labels[{key}]" for key, value in template.labels.items() if labels.get(key) != value]
    if not has_finalizer(rolebinding) and not is_deleting(rolebinding):
        drift.append("finalizers")
    if not draining:
        drift.extend(f"annotations[{key}]" for key in _HANDSHAKE_ANNOTATIONS if key in annotations)
    return tuple(drift)


def build_update(
    rolebinding: Mapping[str, Any],
    *,
    template: GrantTemplate,
    draining_since: datetime | str | None,
    traceparent: str | None = None,
) -> Manifest:
    """The observed binding with the fields we own set to desired, for a replace (PUT).

    Keeps everyone else's labels, annotations and finalizers and the resourceVersion (so a concurrent
    change makes the write fail with 409 instead of being overwritten). `draining_since` None clears the
    handshake annotations; a datetime or an already formatted string sets the draining annotation and
    clears `released`. roleRef is never changed here (it is immutable).
    """
    body = copy.deepcopy(dict(rolebinding))
    metadata = body.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **template.labels}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in _HANDSHAKE_ANNOTATIONS
    }
    if draining_since is not None:
        since = draining_since if isinstance(draining_since, str) else format_time(draining_since)
        annotations[constants.DRAINING_ANNOTATION] = since
    if traceparent:
        annotations[constants.TRACEPARENT_ANNOTATION] = traceparent
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    finalizers = list(metadata.get("finalizers") or [])
    # A binding being deleted cannot gain finalizers (the API refuses); it is recreated instead.
    if constants.GRANT_FINALIZER not in finalizers and not metadata.get("deletionTimestamp"):
        finalizers.append(constants.GRANT_FINALIZER)
    if finalizers:
        metadata["finalizers"] = finalizers
    else:
        metadata.pop("finalizers", None)
    body["subjects"] = template.subjects
    return body


def build_release(rolebinding: Mapping[str, Any]) -> Manifest | None:
    """The observed binding without our finalizer, for a replace; None when it does not carry it."""
    if not has_finalizer(rolebinding):
        return None
    body = copy.deepcopy(dict(rolebinding))
    metadata = body["metadata"]
    finalizers = [item for item in metadata["finalizers"] if item != constants.GRANT_FINALIZER]
    if finalizers:
        metadata["finalizers"] = finalizers
    else:
        metadata.pop("finalizers")
    return body


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _normal_role_ref(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {key: str(value.get(key) or "") for key in ("apiGroup", "kind", "name")}


def _normal_subjects(value: object) -> list[dict[str, str]] | None:
    # The API server may add `apiGroup: ""` to ServiceAccount subjects; it means the same thing.
    if not isinstance(value, list):
        return None
    normal = []
    for subject in value:
        if not isinstance(subject, Mapping):
            return None
        if subject.get("apiGroup") not in (None, ""):
            return None
        normal.append({key: str(subject.get(key) or "") for key in ("kind", "name", "namespace")})
    return normal

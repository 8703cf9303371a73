"""Metadata every owned object shares: labels, the controller ownerReference, sorted maps.

Pure: no I/O. Called by the per-kind builders only. Labels are ToolHive's (`labelsForMCPServer`) plus
`app.kubernetes.io/managed-by`, so ToolHive tooling and `kubectl get -l toolhive-name=<name>` keep working.
User-supplied labels and annotations (resourceOverrides) are merged *under* ours: an override can add
keys but never replace a key the operator relies on (selectors, checksums).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from toolhive import constants, names
from toolhive.builders import inputs

V = TypeVar("V")


def sorted_map(values: Mapping[str, V]) -> dict[str, V]:
    """A copy of `values` with keys in sorted order, so serialised output never depends on input order."""
    return {key: values[key] for key in sorted(values)}


def merged(ours: Mapping[str, str], theirs: Mapping[str, str] | None) -> dict[str, str]:
    """`theirs` overlaid by `ours` (ours win on a shared key), sorted."""
    return sorted_map({**(theirs or {}), **ours})


def selector_labels(server: inputs.Server) -> dict[str, str]:
    """Labels that select the proxy pods: stable for the life of the server (instance-based only)."""
    value = names.label_value(server.name)
    return sorted_map(
        {
            constants.LABEL_APP: constants.APP_VALUE,
            constants.LABEL_NAME: constants.APP_VALUE,
            constants.LABEL_INSTANCE: value,
            constants.LABEL_TOOLHIVE: "true",
            constants.LABEL_TOOLHIVE_NAME: value,
        }
    )


def standard_labels(server: inputs.Server) -> dict[str, str]:
    """Selector labels plus `app.kubernetes.io/managed-by`, for every object the operator owns."""
    return sorted_map({**selector_labels(server), constants.LABEL_MANAGED_BY: constants.MANAGED_BY})


def owner_reference(owner: inputs.Server | Mapping[str, Any]) -> dict[str, Any]:
    """The controller ownerReference to an MCPServer: garbage collection and watch mapping.

    Takes the builder input or a raw MCPServer body as read from the API (the reconciler adopts the
    runner's StatefulSet with the latter); a body without `metadata.name`/`uid` raises `ValueError`.
    """
    if isinstance(owner, inputs.Server):
        name, uid = owner.name, owner.uid
    else:
        metadata = owner.get("metadata") or {}
        raw_name, raw_uid = metadata.get("name"), metadata.get("uid")
        if not isinstance(raw_name, str) or not isinstance(raw_uid, str) or not raw_name or not raw_uid:
            raise ValueError("metadata.name and metadata.uid: required for an ownerReference")
        name, uid = raw_name, raw_uid
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.MCPSERVER_KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    server: inputs.Server,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`metadata` for an owned object: name, namespace, labels (standard unless given), owner.

    Empty annotations are omitted rather than written as `{}`, so an object without any compares equal
    to what the API server returns.
    """
    meta: dict[str, Any] = {
        "name": name,
        "namespace": server.namespace,
        "labels": sorted_map(labels if labels is not None else standard_labels(server)),
    }
    if annotations:
        meta["annotations"] = sorted_map(annotations)
    meta["ownerReferences"] = [owner_reference(server)]
    return meta

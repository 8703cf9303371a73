"""What the multiplexer keeps of watched objects: enough for the reconciler, nothing it never reads."""

from __future__ import annotations

from typing import Any

import pytest

from toolhive import constants, multiplexer


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "fetch",
            "namespace": "team-a",
            "uid": "u1",
            "resourceVersion": "7",
            "generation": 3,
            "labels": {constants.LABEL_TOOLHIVE: "true", constants.LABEL_TOOLHIVE_NAME: "fetch", "team": "a"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [{"kind": constants.MCPSERVER_KIND, "name": "fetch", "controller": True}],
            "managedFields": [{"manager": "toolhive-operator"}],
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "proxy", "image": "x"}]}}},
        "status": {
            "observedGeneration": 3,
            "replicas": 1,
            "readyReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "message": "long text"}],
        },
    }


def test_a_slim_child_keeps_identity_labels_ownership_replicas_and_status_counters_only() -> None:
    slim = multiplexer.slim_owned(deployment())
    assert slim == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "fetch",
            "namespace": "team-a",
            "uid": "u1",
            "resourceVersion": "7",
            "generation": 3,
            "labels": {constants.LABEL_TOOLHIVE: "true", constants.LABEL_TOOLHIVE_NAME: "fetch", "team": "a"},
            "ownerReferences": [{"kind": constants.MCPSERVER_KIND, "name": "fetch", "controller": True}],
        },
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 3, "replicas": 1, "readyReplicas": 1},
    }


def test_a_cached_mcpserver_drops_managed_fields_and_kubectls_last_applied_copy_only() -> None:
    server = {
        "metadata": {
            "name": "fetch",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "a"},
            "managedFields": [{"manager": "kubectl"}],
            "finalizers": [constants.FINALIZER],
        },
        "spec": {"image": "x"},
        "status": {"phase": "Ready"},
    }
    assert multiplexer.slim_mcpserver(server) == {
        "metadata": {"name": "fetch", "annotations": {"team": "a"}, "finalizers": [constants.FINALIZER]},
        "spec": {"image": "x"},
        "status": {"phase": "Ready"},
    }
    only_last_applied = {
        "metadata": {"name": "b", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}
    }
    assert multiplexer.slim_mcpserver(only_last_applied) == {"metadata": {"name": "b"}}


def server(**changes: Any) -> dict[str, Any]:
    """A cached MCPServer after its first pass; `changes` replace metadata keys, spec or status."""
    body: dict[str, Any] = {
        "metadata": {
            "name": "fetch",
            "namespace": "team-a",
            "uid": "u1",
            "resourceVersion": "10",
            "generation": 1,
            "labels": {"team": "a"},
            "finalizers": [constants.FINALIZER],
        },
        "spec": {"image": "x"},
        "status": {"phase": "Pending", "observedGeneration": 1},
    }
    for key, value in changes.items():
        if key in ("spec", "status"):
            body[key] = value
        else:
            body["metadata"][key] = value
    return body


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (server(), server(resourceVersion="11", status={"phase": "Ready"}), False),
        (server(finalizers=[]), server(resourceVersion="11"), False),
        (
            server(finalizers=["other"]),
            server(resourceVersion="11", finalizers=["other", constants.FINALIZER]),
            False,
        ),
        (server(), server(resourceVersion="11", generation=2, spec={"image": "y"}), True),
        (server(), server(resourceVersion="11", finalizers=[]), True),
        (server(), server(resourceVersion="11", finalizers=[constants.FINALIZER, "other"]), True),
        (server(), server(resourceVersion="11", deletionTimestamp="2026-11-24T00:00:00Z"), True),
        (server(), server(resourceVersion="11", labels={"team": "b"}), True),
        (server(), server(resourceVersion="11", annotations={"a": "b"}), True),
    ],
    ids=[
        "its own status write: no pass",
        "its own finalizer appearing: no pass",
        "its own finalizer next to another one: no pass",
        "a new spec: a pass",
        "someone removed the finalizer: a pass",
        "another finalizer added: a pass",
        "deletion requested: a pass",
        "labels changed: a pass",
        "annotations changed: a pass",
    ],
)
def test_a_modified_mcpserver_needs_a_pass_unless_only_the_operators_own_writes_moved(
    old: dict[str, Any], new: dict[str, Any], expected: bool
) -> None:
    assert multiplexer.needs_pass(old, new) is expected


def test_a_watched_child_matters_only_when_what_is_kept_of_it_changed() -> None:
    slim = multiplexer.slim_owned(deployment())
    moved = multiplexer.slim_owned(deployment())
    moved["metadata"]["resourceVersion"] = "8"  # e.g. a condition's message changed: not kept
    assert not multiplexer.child_changed(slim, moved)
    moved["status"]["readyReplicas"] = 0
    assert multiplexer.child_changed(slim, moved)

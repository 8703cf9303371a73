"""What the multiplexer keeps of watched objects: enough for the reconciler, nothing it never reads."""

from __future__ import annotations

from typing import Any

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

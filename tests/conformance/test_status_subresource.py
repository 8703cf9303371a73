"""The /status subresource of built-in kinds: the main resource ignores status, /status ignores the rest."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.rawkube import RawKube


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]},
            },
        },
        "status": {"replicas": 5},
    }


def test_create_drops_status_and_main_writes_keep_it(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = kube.post(base, deployment("web")).body
    assert "replicas" not in (created.get("status") or {})
    kube.patch(f"{base}/web/status", {"status": {"replicas": 1, "readyReplicas": 1}})
    main = kube.patch(f"{base}/web", {"spec": {"replicas": 2}, "status": {"readyReplicas": 0}}).body
    assert main["status"] == {"replicas": 1, "readyReplicas": 1} and main["spec"]["replicas"] == 2


def test_status_put_changes_only_status(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = kube.post(base, deployment("web")).body
    created["spec"]["replicas"] = 7
    created["status"] = {"observedGeneration": 1, "replicas": 1}
    updated = kube.put(f"{base}/web/status", created)
    assert updated.status == 200
    assert updated.body["spec"]["replicas"] == 1 and updated.body["status"]["observedGeneration"] == 1
    assert updated.body["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/namespaces/{ns}/pods",
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
        ),
        (
            "/api/v1/namespaces/{ns}/services",
            {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}},
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/statefulsets",
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": deployment("x")["spec"]},
        ),
    ],
    ids=["pods", "services", "statefulsets"],
)
def test_status_subresource_of_other_builtins(
    kube: RawKube, namespace: str, path: str, body: dict[str, Any]
) -> None:
    base = path.format(ns=namespace)
    kube.post(base, {**body, "metadata": {"name": "x"}})
    patched = kube.patch(
        f"{base}/x/status",
        {
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"ignored": "yes"}},
        },
    )
    assert patched.status == 200, patched.body
    assert patched.body["status"]["conditions"][0]["type"] == "Ready"
    assert "ignored" not in (patched.body["metadata"].get("labels") or {})


def test_namespace_status_cannot_be_set_through_the_main_resource(kube: RawKube, namespace: str) -> None:
    patched = kube.patch(f"/api/v1/namespaces/{namespace}", {"status": {"phase": "Terminating"}}).body
    assert patched["status"]["phase"] == "Active"


def test_kinds_without_a_status_subresource_answer_404_on_status(kube: RawKube, namespace: str) -> None:
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    )
    assert kube.get(f"/api/v1/namespaces/{namespace}/configmaps/c/status").status == 404

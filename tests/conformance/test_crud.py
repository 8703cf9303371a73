"""Create, read, update, delete: status codes, Status bodies and object metadata (API concepts docs)."""

from __future__ import annotations

from tests.conformance.rawkube import RawKube


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_create_returns_201_with_uid_timestamp_and_resource_version(kube: RawKube, namespace: str) -> None:
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a", k="v"))
    assert created.status == 201
    meta = created.body["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert meta["namespace"] == namespace
    assert "generation" not in meta, "ConfigMaps do not track generation"


def test_create_of_an_existing_name_is_409_already_exists(kube: RawKube, namespace: str) -> None:
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a"))
    again = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a"))
    assert again.status == 409
    assert again.body["kind"] == "Status" and again.reason == "AlreadyExists"
    assert again.message == 'configmaps "a" already exists'
    assert again.body["details"] == {"name": "a", "kind": "configmaps"}


def test_get_of_a_missing_object_is_404_with_a_status_body(kube: RawKube, namespace: str) -> None:
    missing = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/nope")
    assert missing.status == 404
    assert missing.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }


def test_update_with_a_stale_resource_version_is_409_conflict(kube: RawKube, namespace: str) -> None:
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a", k="1")).body
    fresh = dict(created, data={"k": "2"})
    assert kube.put(f"/api/v1/namespaces/{namespace}/configmaps/a", fresh).status == 200
    stale = dict(created, data={"k": "3"})
    response = kube.put(f"/api/v1/namespaces/{namespace}/configmaps/a", stale)
    assert response.status == 409 and response.reason == "Conflict"
    assert "the object has been modified" in response.message

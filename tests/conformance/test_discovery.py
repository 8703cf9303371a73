"""Discovery documents (`/version`, `/api`, `/apis`, group and group-version lists), with and without `/`."""

from __future__ import annotations

import pytest

from tests.conformance.rawkube import RawKube


@pytest.mark.parametrize("path", ["/version", "/version/"], ids=["version", "version with trailing slash"])
def test_version_answers_with_and_without_a_trailing_slash(kube: RawKube, path: str) -> None:
    response = kube.get(path)
    assert response.status == 200
    assert response.body["major"] == "1" and response.body["gitVersion"].startswith("v1.")


@pytest.mark.parametrize("path", ["/api", "/api/"], ids=["api", "api with trailing slash"])
def test_core_api_versions_list_v1(kube: RawKube, path: str) -> None:
    response = kube.get(path)
    assert response.status == 200
    assert response.body["kind"] == "APIVersions" and response.body["versions"] == ["v1"]


@pytest.mark.parametrize("path", ["/apis", "/apis/"], ids=["apis", "apis with trailing slash"])
def test_group_list_names_every_builtin_group(kube: RawKube, path: str) -> None:
    body = kube.get(path).body
    assert body["kind"] == "APIGroupList"
    names = {g["name"] for g in body["groups"]}
    assert {
        "apps",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "authorization.k8s.io",
    } <= names
    apps = next(g for g in body["groups"] if g["name"] == "apps")
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/"], ids=["core v1", "core v1 with trailing slash"])
def test_core_resource_list_has_kinds_verbs_and_subresources(kube: RawKube, path: str) -> None:
    body = kube.get(path).body
    assert body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in body["resources"]}
    for plural in ("namespaces", "serviceaccounts", "configmaps", "secrets", "services", "pods", "events"):
        assert plural in by_name, plural
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["configmaps"]["namespaced"] is True and "watch" in by_name["configmaps"]["verbs"]
    assert by_name["namespaces/status"]["verbs"] == ["get", "patch", "update"]
    assert by_name["serviceaccounts/token"]["kind"] == "TokenRequest"


@pytest.mark.parametrize("path", ["/apis/apps", "/apis/apps/"], ids=["group", "group with trailing slash"])
def test_group_document_lists_its_versions(kube: RawKube, path: str) -> None:
    body = kube.get(path).body
    assert body["kind"] == "APIGroup" and body["name"] == "apps"
    assert body["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]


@pytest.mark.parametrize(
    "path", ["/apis/apps/v1", "/apis/apps/v1/"], ids=["apps v1", "apps v1 with trailing slash"]
)
def test_group_version_resource_list(kube: RawKube, path: str) -> None:
    body = kube.get(path).body
    names = {r["name"] for r in body["resources"]}
    assert {"deployments", "deployments/status", "statefulsets", "statefulsets/status"} <= names


@pytest.mark.parametrize(
    "path",
    ["/apis/nope.example.com", "/apis/apps/v9", "/api/v2", "/nonsense"],
    ids=["unknown group", "unknown version", "unknown core version", "unknown path"],
)
def test_unknown_discovery_paths_are_404_status(kube: RawKube, path: str) -> None:
    response = kube.get(path)
    assert response.status == 404
    assert response.body["kind"] == "Status" and response.reason == "NotFound"


def test_unknown_resource_is_404(kube: RawKube) -> None:
    response = kube.get("/apis/apps/v1/namespaces/default/widgets")
    assert response.status == 404 and response.reason == "NotFound"

"""Create, read, update, delete: status codes, Status bodies and object metadata (API concepts docs)."""

from __future__ import annotations

import pytest

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


def deployment(name: str, *, image: str = "nginx:1.27", replicas: int = 1) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_generation_starts_at_one_and_bumps_on_spec_changes_only(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = kube.post(base, deployment("web")).body
    assert created["metadata"]["generation"] == 1
    labelled = kube.patch(f"{base}/web", {"metadata": {"labels": {"x": "y"}}}).body
    assert labelled["metadata"]["generation"] == 1, "metadata changes leave generation alone"
    scaled = kube.patch(f"{base}/web", {"spec": {"replicas": 3}}).body
    assert scaled["metadata"]["generation"] == 2
    assert int(scaled["metadata"]["resourceVersion"]) > int(labelled["metadata"]["resourceVersion"])


def test_resource_versions_increase_across_kinds(kube: RawKube, namespace: str) -> None:
    first = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a")).body
    second = kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("b")).body
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_an_update_that_changes_nothing_keeps_the_resource_version(kube: RawKube, namespace: str) -> None:
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a", k="v")).body
    same = kube.put(f"/api/v1/namespaces/{namespace}/configmaps/a", created).body
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_server_defaults_are_filled_in_for_deployments_and_services(kube: RawKube, namespace: str) -> None:
    created = kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("web")).body
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"
    assert created["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    svc = kube.post(f"/api/v1/namespaces/{namespace}/services", service).body
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"]
    assert svc["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}


def test_create_in_a_missing_namespace_is_404_for_the_namespace(kube: RawKube) -> None:
    response = kube.post("/api/v1/namespaces/no-such-ns/configmaps", configmap("a"))
    assert response.status == 404
    assert response.message == 'namespaces "no-such-ns" not found'
    assert response.body["details"] == {"name": "no-such-ns", "kind": "namespaces"}


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("Bad_Name", "a lowercase RFC 1123 subdomain must consist of"),
        ("x" * 254, "must be no more than 253 characters"),
    ],
    ids=["uppercase and underscore", "too long"],
)
def test_invalid_object_names_are_422_naming_metadata_name(
    kube: RawKube, namespace: str, name: str, detail: str
) -> None:
    response = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap(name))
    assert response.status == 422 and response.reason == "Invalid"
    assert response.message.startswith(
        f'ConfigMap "{name}" is invalid: metadata.name: Invalid value: "{name}": '
    )
    assert detail in response.message
    assert response.body["details"]["causes"][0]["field"] == "metadata.name"


def test_namespace_names_must_be_dns_labels(kube: RawKube) -> None:
    response = kube.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    )
    assert response.status == 422
    assert "a lowercase RFC 1123 label must consist of" in response.message


def test_service_names_must_be_dns_1035_labels(kube: RawKube, namespace: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "1svc"},
        "spec": {"ports": [{"port": 80}]},
    }
    response = kube.post(f"/api/v1/namespaces/{namespace}/services", body)
    assert response.status == 422 and "a DNS-1035 label must consist of" in response.message


@pytest.mark.parametrize(
    ("labels", "bad"),
    [({"ok": "bad value"}, "bad value"), ({"bad key!": "v"}, "bad key!"), ({"ok": "x" * 64}, "x" * 64)],
    ids=["value with a space", "key with a bang", "value too long"],
)
def test_invalid_labels_are_422_naming_metadata_labels(
    kube: RawKube, namespace: str, labels: dict[str, str], bad: str
) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": labels}}
    response = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body)
    assert response.status == 422
    assert f'metadata.labels: Invalid value: "{bad}"' in response.message


def test_valid_prefixed_labels_are_accepted(kube: RawKube, namespace: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "labels": {"toolhive.stacklok.dev/enabled": "true", "empty": ""}},
    }
    assert kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body).status == 201


def test_generate_name_appends_a_random_suffix(kube: RawKube, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}
    first = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body).body["metadata"]
    second = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body).body["metadata"]
    assert first["name"].startswith("cfg-") and len(first["name"]) == 9
    assert first["name"] != second["name"] and first["generateName"] == "cfg-"


def test_neither_name_nor_generate_name_is_422(kube: RawKube, namespace: str) -> None:
    response = kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap"}
    )
    assert response.status == 422
    assert "metadata.name: Required value: name or generateName is required" in response.message


@pytest.mark.parametrize(
    ("body", "raw", "ctype"),
    [
        (None, b"{not json", "application/json"),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}, None, "application/json"),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "other"}},
            None,
            "application/json",
        ),
    ],
    ids=["malformed json", "kind of another resource", "namespace differs from the URL"],
)
def test_undecodable_or_mismatched_bodies_are_400(
    kube: RawKube, namespace: str, body: object, raw: bytes | None, ctype: str
) -> None:
    response = kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body, raw=raw, ctype=ctype)
    assert response.status == 400 and response.reason == "BadRequest"


def test_yaml_bodies_are_accepted(kube: RawKube, namespace: str) -> None:
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    response = kube.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", raw=raw, ctype="application/yaml"
    )
    assert response.status == 201 and response.body["data"] == {"k": "v"}


def test_an_unsupported_patch_content_type_is_415(kube: RawKube, namespace: str) -> None:
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a"))
    response = kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/a", {"data": {}}, ctype="text/plain")
    assert response.status == 415 and response.reason == "UnsupportedMediaType"


def test_put_with_a_different_name_than_the_url_is_400(kube: RawKube, namespace: str) -> None:
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a")).body
    created["metadata"]["name"] = "b"
    assert kube.put(f"/api/v1/namespaces/{namespace}/configmaps/a", created).status == 400


def test_put_of_a_missing_object_is_404(kube: RawKube, namespace: str) -> None:
    assert kube.put(f"/api/v1/namespaces/{namespace}/configmaps/missing", configmap("missing")).status == 404


def test_delete_returns_200_and_the_object_is_gone(kube: RawKube, namespace: str) -> None:
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a"))
    deleted = kube.delete(f"/api/v1/namespaces/{namespace}/configmaps/a")
    assert deleted.status == 200
    assert deleted.body["status"] == "Success" and deleted.body["details"]["name"] == "a"
    assert kube.get(f"/api/v1/namespaces/{namespace}/configmaps/a").status == 404
    assert kube.delete(f"/api/v1/namespaces/{namespace}/configmaps/a").status == 404


def test_delete_with_a_stale_uid_precondition_is_409(kube: RawKube, namespace: str) -> None:
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", configmap("a"))
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}
    response = kube.delete(f"/api/v1/namespaces/{namespace}/configmaps/a", options)
    assert response.status == 409 and response.reason == "Conflict"


def test_deployment_without_a_matching_selector_is_422(kube: RawKube, namespace: str) -> None:
    body = deployment("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}  # type: ignore[index]
    response = kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", body)
    assert response.status == 422
    assert "spec.template.metadata.labels: Invalid value" in response.message
    assert "`selector` does not match template `labels`" in response.message


def test_secret_string_data_is_encoded_into_data(kube: RawKube, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    created = kube.post(f"/api/v1/namespaces/{namespace}/secrets", body).body
    assert created["data"] == {"k": "dg=="} and "stringData" not in created and created["type"] == "Opaque"


def test_builtin_kinds_of_every_listed_group_are_served(kube: RawKube, namespace: str) -> None:
    bodies = {
        f"/api/v1/namespaces/{namespace}/serviceaccounts": {"apiVersion": "v1", "kind": "ServiceAccount"},
        f"/api/v1/namespaces/{namespace}/pods": {
            "apiVersion": "v1",
            "kind": "Pod",
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
        },
        f"/api/v1/namespaces/{namespace}/events": {
            "apiVersion": "v1",
            "kind": "Event",
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": namespace},
            "reason": "Test",
            "message": "hello",
        },
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets": {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "spec": deployment("x")["spec"],
        },
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases": {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "spec": {"holderIdentity": "me"},
        },
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events": {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "t",
            "reportingInstance": "t",
            "action": "Test",
            "reason": "Test",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "x", "namespace": namespace},
        },
    }
    for path, partial in bodies.items():
        response = kube.post(path, {**partial, "metadata": {"name": "x"}})
        assert response.status == 201, (path, response.body)
        assert kube.get(f"{path}/x").status == 200


def test_unknown_fields_of_builtin_kinds_are_dropped(kube: RawKube, namespace: str) -> None:
    body = {**configmap("a", k="v"), "bogus": 1}
    body["metadata"]["extra"] = "x"  # type: ignore[index]
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", body).body
    assert "bogus" not in created and "extra" not in created["metadata"]


def test_unknown_fields_of_builtin_kinds_are_400_with_strict_field_validation(
    kube: RawKube, namespace: str
) -> None:
    body = {**configmap("a", k="v"), "bogus": 1}
    response = kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps", body, query={"fieldValidation": "Strict"}
    )
    assert response.status == 400 and response.message == 'strict decoding error: unknown field "bogus"'


def test_delete_collection_removes_only_matching_objects(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name, labels in (("a", {"sweep": "yes"}), ("b", {"sweep": "yes"}), ("c", {})):
        kube.post(
            path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}
        )
    swept = kube.request("DELETE", path, query={"labelSelector": "sweep=yes"})
    assert swept.status == 200 and sorted(i["metadata"]["name"] for i in swept.body["items"]) == ["a", "b"]
    left = sorted(i["metadata"]["name"] for i in kube.get(path).body["items"])
    assert left == ["c", "kube-root-ca.crt"]


def test_delete_collection_with_a_bad_selector_is_400(kube: RawKube, namespace: str) -> None:
    response = kube.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/configmaps", query={"labelSelector": "a in"}
    )
    assert response.status == 400


@pytest.mark.parametrize(
    ("renew", "accepted"),
    [("2026-01-01T00:00:00.123456Z", True), ("2026-01-01T00:00:00Z", False), ("yesterday", False)],
    ids=["six fraction digits", "no fraction", "not a time"],
)
def test_lease_times_are_micro_times(kube: RawKube, namespace: str, renew: str, accepted: bool) -> None:
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "me", "renewTime": renew, "leaseDurationSeconds": 15},
    }
    response = kube.post(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body)
    assert response.status == (201 if accepted else 400), response.body


def test_builtin_bodies_without_kind_and_api_version_take_them_from_the_url(
    kube: RawKube, namespace: str
) -> None:
    created = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "bare"}})
    assert created.status == 201
    assert created.body["kind"] == "ConfigMap" and created.body["apiVersion"] == "v1"

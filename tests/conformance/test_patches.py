"""PATCH in all four formats: merge, JSON patch, strategic merge (built-ins) and server-side apply."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.rawkube import RawKube

JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    }


def make_cm(kube: RawKube, namespace: str, **data: str) -> str:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data})
    return f"{path}/cm"


def test_merge_patch_merges_maps_and_null_deletes(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1", b="2")
    patched = kube.patch(path, {"data": {"a": None, "c": "3"}}, MERGE)
    assert patched.status == 200 and patched.body["data"] == {"b": "2", "c": "3"}


def test_merge_patch_with_a_stale_resource_version_is_409(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    response = kube.patch(path, {"metadata": {"resourceVersion": "1"}, "data": {"a": "2"}}, MERGE)
    assert response.status == 409 and response.reason == "Conflict"


def test_merge_patch_that_is_not_an_object_is_400(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    assert kube.patch(path, ["not", "an", "object"], MERGE).status == 400


def test_json_patch_applies_operations_in_order(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    ops = [
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    patched = kube.patch(path, ops, JSON_PATCH)
    assert patched.status == 200 and patched.body["data"] == {"a": "9", "b": "2"}


def test_json_patch_with_a_failing_test_op_is_422_and_changes_nothing(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    before = kube.get(path).body
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    response = kube.patch(path, ops, JSON_PATCH)
    assert response.status == 422 and response.reason == "Invalid" and response.body["kind"] == "Status"
    assert kube.get(path).body == before


def test_json_patch_with_a_passing_test_op_applies(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    assert kube.patch(path, ops, JSON_PATCH).body["data"] == {"a": "1", "b": "2"}


def test_json_patch_removing_a_missing_path_is_422(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    assert kube.patch(path, [{"op": "remove", "path": "/data/zzz"}], JSON_PATCH).status == 422


def test_strategic_merge_patch_merges_containers_env_and_ports_by_key(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    containers = [
        {
            "name": "app",
            "image": "app:1",
            "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80}],
        },
        {"name": "side", "image": "side:1"},
    ]
    kube.post(base, deployment("web", containers))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 81}],
                        }
                    ]
                }
            }
        }
    }
    patched = kube.patch(f"{base}/web", patch, SMP).body
    by_name = {c["name"]: c for c in patched["spec"]["template"]["spec"]["containers"]}
    assert set(by_name) == {"app", "side"}, "the sidecar survives: containers merge by name"
    assert [e["name"] for e in by_name["app"]["env"]] == ["A", "B"]
    assert [p["containerPort"] for p in by_name["app"]["ports"]] == [80, 81]
    assert by_name["app"]["image"] == "app:1"


def test_strategic_merge_patch_delete_directive_removes_a_keyed_item(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    kube.post(base, deployment("web", [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    patched = kube.patch(f"{base}/web", patch, SMP).body
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_strategic_merge_patch_on_a_list_without_a_patch_key_replaces_it(
    kube: RawKube, namespace: str
) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    kube.post(base, deployment("web", [{"name": "app", "image": "a:1", "args": ["one", "two"]}]))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["three"]}]}}}}
    patched = kube.patch(f"{base}/web", patch, SMP).body
    assert patched["spec"]["template"]["spec"]["containers"][0]["args"] == ["three"]


def test_strategic_merge_patch_of_finalizers_is_a_set_union(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace)
    kube.patch(path, {"metadata": {"finalizers": ["example.com/a"]}}, SMP)
    merged = kube.patch(path, {"metadata": {"finalizers": ["example.com/b"]}}, SMP).body
    assert merged["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    kube.patch(
        path, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a", "example.com/b"]}}, SMP
    )


def test_server_side_apply_requires_a_field_manager(kube: RawKube, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    response = kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/cm", body, APPLY)
    assert response.status == 422 and response.reason == "Invalid"
    assert response.message == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )


def test_force_is_only_for_apply_patches(kube: RawKube, namespace: str) -> None:
    path = make_cm(kube, namespace, a="1")
    response = kube.patch(path, {"data": {"a": "2"}}, MERGE, query={"force": "true"})
    assert (
        response.status == 422
        and "force: Forbidden: may not be specified for non-apply patch" in response.message
    )


def test_server_side_apply_creates_when_missing_and_records_managed_fields(
    kube: RawKube, namespace: str
) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    created = kube.patch(
        f"/api/v1/namespaces/{namespace}/configmaps/cm", body, APPLY, query={"fieldManager": "me"}
    )
    assert created.status == 201
    managed = created.body["metadata"]["managedFields"]
    mine = [m for m in managed if m["manager"] == "me"]
    assert mine and mine[0]["operation"] == "Apply" and mine[0]["fieldsType"] == "FieldsV1"
    assert "f:a" in json.dumps(mine[0]["fieldsV1"])


def test_server_side_apply_accepts_yaml(kube: RawKube, namespace: str) -> None:
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: '1'\n"
    response = kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/cm",
        raw=raw,
        ctype=APPLY,
        query={"fieldManager": "me"},
    )
    assert response.status == 201 and response.body["data"] == {"a": "1"}


def test_server_side_apply_of_a_json_body_reads_it_as_yaml(kube: RawKube, namespace: str) -> None:
    # JSON is YAML: an apply configuration sent as JSON (what client libraries do) means the same document,
    # escapes included, and is validated like any other.
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    raw = (
        b' {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "\\u00e9"}},'
    )
    raw += b' "data": {"b": "x"}, "binaryData": null}'
    response = kube.request("PATCH", path, raw=raw, ctype=APPLY, query={"fieldManager": "me"})
    assert response.status == 422, response.body  # the label value is checked whichever parser read it
    raw = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"b": "x"}}'
    response = kube.request("PATCH", path, raw=raw, ctype=APPLY, query={"fieldManager": "me"})
    assert response.status == 201 and response.body["data"] == {"b": "x"}
    # NaN is no JSON number: as YAML, a plain scalar "NaN" is a string.
    raw = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"b": NaN}}'
    response = kube.request("PATCH", path, raw=raw, ctype=APPLY, query={"fieldManager": "me"})
    assert response.status == 200 and response.body["data"] == {"b": "NaN"}, response.body


def test_server_side_apply_of_malformed_yaml_is_400(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    for raw in (b'{"apiVersion": "v1", "kind": ', b"data: [1\n", b"a: \xff\xfe\n"):
        response = kube.request("PATCH", path, raw=raw, ctype=APPLY, query={"fieldManager": "me"})
        assert response.status == 400 and "error converting YAML to JSON" in response.message, raw


def test_reapplying_with_the_same_manager_removes_fields_it_no_longer_sets(
    kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    first = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"a": "1", "b": "2"},
    }
    kube.patch(path, first, APPLY, query={"fieldManager": "me"})
    kube.patch(path, {"data": {"other": "x"}}, MERGE, query={"fieldManager": "someone-else"})
    second = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    applied = kube.patch(path, second, APPLY, query={"fieldManager": "me"}).body
    assert applied["data"] == {"a": "1", "other": "x"}, "b is dropped, the other manager's field stays"


def test_applying_a_field_another_manager_set_differently_is_409_unless_forced(
    kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}},
        query={"fieldManager": "creator"},
    )
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "2"}}
    conflict = kube.patch(path, config, APPLY, query={"fieldManager": "me"})
    assert conflict.status == 409 and conflict.reason == "Conflict"
    assert conflict.message == 'Apply failed with 1 conflict: conflict with "creator" using v1: .data.a'
    assert conflict.body["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    forced = kube.patch(path, config, APPLY, query={"fieldManager": "me", "force": "true"})
    assert forced.status == 200 and forced.body["data"] == {"a": "2"}
    owners = {
        m["manager"] for m in forced.body["metadata"]["managedFields"] if "f:a" in json.dumps(m["fieldsV1"])
    }
    assert owners == {"me"}


def test_applying_the_same_value_another_manager_set_shares_the_field(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}},
        query={"fieldManager": "creator"},
    )
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    assert kube.patch(path, config, APPLY, query={"fieldManager": "me"}).status == 200


def test_apply_merges_containers_by_name_with_other_managers(kube: RawKube, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    kube.post(base, deployment("web", [{"name": "side", "image": "s:1"}]), query={"fieldManager": "other"})
    config = deployment("web", [{"name": "app", "image": "a:1"}])
    applied = kube.patch(f"{base}/web", config, APPLY, query={"fieldManager": "me"}).body
    assert sorted(c["name"] for c in applied["spec"]["template"]["spec"]["containers"]) == ["app", "side"]


def test_apply_without_changes_keeps_the_resource_version(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}
    first = kube.patch(path, config, APPLY, query={"fieldManager": "me"}).body
    second = kube.patch(path, config, APPLY, query={"fieldManager": "me"}).body
    assert first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


def test_patching_a_missing_object_is_404(kube: RawKube, namespace: str) -> None:
    response = kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/missing", {"data": {}}, MERGE)
    assert response.status == 404

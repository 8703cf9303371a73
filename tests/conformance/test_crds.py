"""CustomResourceDefinitions: served resources, scopes, versions, /status, structural schema semantics."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
REPO = Path(__file__).resolve().parents[2]

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
                "profile": {
                    "type": "object",
                    "properties": {"type": {"type": "string"}, "name": {"type": "string"}},
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.type != 'builtin' || self.name in ['none', 'network']",
                            "message": "name must be 'none' or 'network' when type is 'builtin'",
                        }
                    ],
                },
                "id": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "id is immutable"}],
                },
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


def widget_crd(
    group: str, *, scope: str = "Namespaced", versions: tuple[str, ...] = ("v1",)
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                    "subresources": {"status": {}},
                }
                for i, v in enumerate(versions)
            ],
        },
    }


@pytest.fixture(scope="module")
def group(cluster: cluster_mod.Cluster) -> Iterator[str]:
    """A namespaced Widget CRD in a unique group, served as v1 and v1beta1."""
    kube = RawKube(cluster.kubeconfig)
    name = f"g{secrets.token_hex(3)}.example.com"
    created = kube.post(CRDS, widget_crd(name, versions=("v1", "v1beta1")))
    assert created.status == 201, created.body
    cluster_mod.poll(lambda: kube.get(f"/apis/{name}/v1").status == 200)
    yield name
    kube.delete(f"{CRDS}/widgets.{name}")


def widget(name: str, spec: dict[str, Any], version: str = "v1", group: str = "") -> dict[str, Any]:
    return {"apiVersion": f"{group}/{version}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_a_created_crd_is_established_and_discoverable(kube: RawKube, group: str) -> None:
    crd = kube.get(f"{CRDS}/widgets.{group}").body
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    resources = {r["name"]: r for r in kube.get(f"/apis/{group}/v1").body["resources"]}
    assert resources["widgets"]["namespaced"] is True and resources["widgets"]["shortNames"] == ["wd"]
    assert "widgets/status" in resources
    group_doc = kube.get(f"/apis/{group}").body
    assert group_doc["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group_doc["versions"]] == ["v1", "v1beta1"]


def test_custom_resources_are_created_with_generation_and_defaults(
    kube: RawKube, group: str, namespace: str
) -> None:
    created = kube.post(
        f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget("w", {"size": 3}, group=group)
    )
    assert created.status == 201, created.body
    assert created.body["metadata"]["generation"] == 1
    assert created.body["spec"] == {"size": 3, "color": "red"}, "the schema default is applied"


def test_every_served_version_reads_the_same_object(kube: RawKube, group: str, namespace: str) -> None:
    kube.post(f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget("w", {"size": 3}, group=group))
    other = kube.get(f"/apis/{group}/v1beta1/namespaces/{namespace}/widgets/w").body
    assert other["apiVersion"] == f"{group}/v1beta1" and other["spec"]["size"] == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"size": 70000},
            "spec.size: Invalid value: 70000: spec.size in body should be less than or equal to 10",
        ),
        ({"size": 0}, "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        (
            {"size": "big"},
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"size": 1, "color": "green"},
            'spec.color: Unsupported value: "green": supported values: "red", "blue"',
        ),
        ({}, "spec.size: Required value"),
        ({"size": 1, "name": "toolong"}, "spec.name: Too long: may not be more than 5 bytes"),
        ({"size": 1, "name": "AB"}, "spec.name in body should match '^[a-z]+$'"),
        ({"size": 1, "tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items"),
        ({"size": 1, "port": 1.5}, "spec.port in body must be of type integer,string"),
    ],
    ids=[
        "above maximum",
        "below minimum",
        "wrong type",
        "not in enum",
        "missing required",
        "too long",
        "pattern mismatch",
        "too many items",
        "int-or-string",
    ],
)
def test_schema_violations_are_422_with_the_field_path(
    kube: RawKube, group: str, namespace: str, spec: dict[str, Any], message: str
) -> None:
    response = kube.post(f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget("w", spec, group=group))
    assert response.status == 422 and response.reason == "Invalid"
    assert response.message.startswith(f'Widget.{group} "w" is invalid: ')
    assert message in response.message
    assert response.body["details"]["group"] == group and response.body["details"]["kind"] == "Widget"


def test_unknown_fields_are_pruned_except_where_preserved(kube: RawKube, group: str, namespace: str) -> None:
    spec = {"size": 1, "bogus": True, "free": {"anything": {"goes": 1}}}
    created = kube.post(
        f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget("w", spec, group=group)
    ).body
    assert "bogus" not in created["spec"]
    assert created["spec"]["free"] == {"anything": {"goes": 1}}


def test_unknown_fields_are_400_with_strict_field_validation(
    kube: RawKube, group: str, namespace: str
) -> None:
    response = kube.post(
        f"/apis/{group}/v1/namespaces/{namespace}/widgets",
        widget("w", {"size": 1, "bogus": True}, group=group),
        query={"fieldValidation": "Strict"},
    )
    assert response.status == 400 and 'unknown field "spec.bogus"' in response.message


def test_main_resource_writes_ignore_status_and_status_writes_ignore_spec(
    kube: RawKube, group: str, namespace: str
) -> None:
    base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    body = widget("w", {"size": 1}, group=group)
    body["status"] = {"ready": True}
    created = kube.post(base, body).body
    assert "status" not in created, "status is dropped on create when the subresource exists"
    status = kube.patch(f"{base}/w/status", {"status": {"ready": True}, "spec": {"size": 9}}).body
    assert status["status"] == {"ready": True} and status["spec"]["size"] == 1
    assert status["metadata"]["generation"] == 1, "status writes never bump generation"
    main = kube.patch(f"{base}/w", {"status": {"ready": False}, "spec": {"size": 2}}).body
    assert main["status"] == {"ready": True} and main["spec"]["size"] == 2
    assert main["metadata"]["generation"] == 2


def test_status_writes_are_validated_too(kube: RawKube, group: str, namespace: str) -> None:
    base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    kube.post(base, widget("w", {"size": 1}, group=group))
    response = kube.patch(f"{base}/w/status", {"status": {"ready": "yes"}})
    assert response.status == 422 and "status.ready" in response.message


def test_strategic_merge_patch_on_a_custom_resource_is_415(kube: RawKube, group: str, namespace: str) -> None:
    base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    kube.post(base, widget("w", {"size": 1}, group=group))
    response = kube.patch(f"{base}/w", {"spec": {"size": 2}}, "application/strategic-merge-patch+json")
    assert response.status == 415 and response.reason == "UnsupportedMediaType"


def test_cluster_scoped_crds_serve_objects_without_a_namespace(kube: RawKube) -> None:
    group = f"c{secrets.token_hex(3)}.example.com"
    assert kube.post(CRDS, widget_crd(group, scope="Cluster")).status == 201
    try:
        cluster_mod.poll(lambda: kube.get(f"/apis/{group}/v1").status == 200)
        created = kube.post(f"/apis/{group}/v1/widgets", widget("w", {"size": 1}, group=group))
        assert created.status == 201 and "namespace" not in created.body["metadata"]
        assert (
            kube.post(
                f"/apis/{group}/v1/namespaces/default/widgets", widget("x", {"size": 1}, group=group)
            ).status
            == 404
        )
    finally:
        kube.delete(f"{CRDS}/widgets.{group}")


def test_deleting_a_crd_deletes_its_objects_and_stops_serving(kube: RawKube, namespace: str) -> None:
    group = f"d{secrets.token_hex(3)}.example.com"
    kube.post(CRDS, widget_crd(group))
    cluster_mod.poll(lambda: kube.get(f"/apis/{group}/v1").status == 200)
    kube.post(f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget("w", {"size": 1}, group=group))
    assert kube.delete(f"{CRDS}/widgets.{group}").status == 200
    cluster_mod.poll(lambda: kube.get(f"{CRDS}/widgets.{group}").status == 404, timeout=30)
    cluster_mod.poll(lambda: kube.get(f"/apis/{group}/v1/namespaces/{namespace}/widgets").status == 404)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["metadata"].update(name="wrong.example.com"),
            'must be spec.names.plural+"."+spec.group',
        ),
        (lambda c: c["spec"].update(scope="Galaxy"), 'spec.scope: Unsupported value: "Galaxy"'),
        (
            lambda c: c["spec"]["versions"][0].update(storage=False),
            "must have exactly one version marked as storage",
        ),
        (lambda c: c["spec"]["versions"][0].pop("schema"), "schemas are required"),
    ],
    ids=["name is not plural.group", "unknown scope", "no storage version", "no schema"],
)
def test_invalid_crds_are_422(kube: RawKube, change: Any, message: str) -> None:
    crd = widget_crd(f"i{secrets.token_hex(3)}.example.com")
    change(crd)
    response = kube.post(CRDS, crd)
    assert response.status == 422 and message in response.message


def test_the_project_mcpserver_crd_rejects_an_out_of_range_proxy_port(kube: RawKube, namespace: str) -> None:
    crd = yaml.safe_load((REPO / "crds" / "toolhive.stacklok.dev_mcpservers.yaml").read_text())
    existing = kube.get(f"{CRDS}/{crd['metadata']['name']}")
    if existing.status == 404:
        assert kube.post(CRDS, crd).status == 201
    version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
    cluster_mod.poll(lambda: kube.get(f"/apis/toolhive.stacklok.dev/{version}").status == 200)
    body = {
        "apiVersion": f"toolhive.stacklok.dev/{version}",
        "kind": "MCPServer",
        "metadata": {"name": "bad"},
        "spec": {"image": "ghcr.io/example/mcp:1", "proxyPort": 70000},
    }
    response = kube.post(f"/apis/toolhive.stacklok.dev/{version}/namespaces/{namespace}/mcpservers", body)
    assert response.status == 422
    assert (
        "spec.proxyPort: Invalid value: 70000: spec.proxyPort in body should be less than or equal to 65535"
        in response.message
    )


@pytest.mark.parametrize(
    ("profile", "accepted"),
    [
        ({"type": "builtin", "name": "network"}, True),
        ({"type": "configmap", "name": "x"}, True),
        ({"type": "builtin", "name": "x"}, False),
    ],
    ids=["builtin with a known name", "other type with any name", "builtin with an unknown name"],
)
def test_cel_validation_rules_are_enforced(
    kube: RawKube, group: str, namespace: str, profile: dict[str, str], accepted: bool
) -> None:
    body = widget("w", {"size": 1, "profile": profile}, group=group)
    response = kube.post(f"/apis/{group}/v1/namespaces/{namespace}/widgets", body)
    if accepted:
        assert response.status == 201, response.body
    else:
        assert response.status == 422
        assert (
            "spec.profile: Invalid value: \"object\": name must be 'none' or 'network' when type is 'builtin'"
            in response.message
        )


def test_cel_transition_rules_compare_with_the_old_object(kube: RawKube, group: str, namespace: str) -> None:
    base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    assert kube.post(base, widget("w", {"size": 1, "id": "a"}, group=group)).status == 201, (
        "no oldSelf on create"
    )
    assert kube.patch(f"{base}/w", {"spec": {"size": 2}}).status == 200
    changed = kube.patch(f"{base}/w", {"spec": {"id": "b"}})
    assert changed.status == 422 and 'spec.id: Invalid value: "string": id is immutable' in changed.message


def test_a_custom_resource_without_a_kind_is_400(kube: RawKube, group: str, namespace: str) -> None:
    body = {"apiVersion": f"{group}/v1", "metadata": {"name": "w"}, "spec": {"size": 1}}
    response = kube.post(f"/apis/{group}/v1/namespaces/{namespace}/widgets", body)
    assert response.status == 400 and "Object 'Kind' is missing" in response.message


def test_a_crd_update_changes_how_apply_merges_its_lists(kube: RawKube, namespace: str) -> None:
    # The merge strategy derived from a schema is cached per schema: the update must replace it.
    group = f"g{secrets.token_hex(3)}.example.com"
    crd = widget_crd(group)
    ports: dict[str, Any] = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
        },
    }
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"ports": ports}}}}
    crd["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": schema}
    assert kube.post(CRDS, crd).status == 201
    try:
        cluster_mod.poll(lambda: kube.get(f"/apis/{group}/v1").status == 200)
        path = f"/apis/{group}/v1/namespaces/{namespace}/widgets/w"

        def apply(manager: str, *items: dict[str, Any]) -> list[Any]:
            body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
            body["spec"] = {"ports": list(items)}
            query = {"fieldManager": manager, "force": "true"}
            response = kube.patch(path, body, "application/apply-patch+yaml", query=query)
            assert response.status in (200, 201), response.body
            result: list[Any] = response.body["spec"]["ports"]
            return result

        x, y = {"name": "x", "port": 1}, {"name": "y", "port": 2}
        apply("a", x)
        assert apply("b", y) == [y]  # an atomic list: replaced whole
        stored = kube.get(f"{CRDS}/widgets.{group}").body
        ports.update({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
        stored["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": schema}
        assert kube.put(f"{CRDS}/widgets.{group}", stored).status == 200
        assert sorted(apply("a", x), key=lambda item: str(item["name"])) == [x, y]  # now merged by key
    finally:
        kube.delete(f"{CRDS}/widgets.{group}")

"""Deletion lifecycle: finalizers, deletionTimestamp, namespace termination, garbage collection, roleRef."""

from __future__ import annotations

from typing import Any

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube

poll = cluster_mod.poll


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}}


def test_delete_with_a_finalizer_sets_deletion_timestamp_and_keeps_the_object(
    kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("held", finalizers=["example.com/hold"]))
    deleted = kube.delete(f"{path}/held")
    assert deleted.status == 200
    assert deleted.body["kind"] == "ConfigMap" and deleted.body["metadata"]["deletionTimestamp"]
    assert kube.get(f"{path}/held").body["metadata"]["deletionTimestamp"]
    assert kube.delete(f"{path}/held").status == 200, "deleting again is harmless"


def test_removing_the_last_finalizer_deletes_the_object(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("held", finalizers=["example.com/a", "example.com/b"]))
    kube.delete(f"{path}/held")
    kube.patch(f"{path}/held", {"metadata": {"finalizers": ["example.com/b"]}})
    assert kube.get(f"{path}/held").status == 200
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    kube.patch(f"{path}/held", {"metadata": {"finalizers": None}})
    assert kube.get(f"{path}/held").status == 404
    stream = kube.watch(path, resourceVersion=rv, timeoutSeconds=5)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for _, e in zip(range(2), stream, strict=False)]
    assert seen == [("MODIFIED", "held"), ("DELETED", "held")], "the update, then the deletion"


def test_no_new_finalizers_may_be_added_while_deleting(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("held", finalizers=["example.com/a"]))
    kube.delete(f"{path}/held")
    response = kube.patch(f"{path}/held", {"metadata": {"finalizers": ["example.com/a", "example.com/new"]}})
    assert response.status == 422
    assert (
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"
        in (response.message)
    )


def test_unqualified_finalizer_names_are_422(kube: RawKube, namespace: str) -> None:
    response = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", cm("x", finalizers=["nodomain"]))
    assert response.status == 422 and "metadata.finalizers[0]" in response.message


def test_namespace_deletion_terminates_deletes_content_and_honours_finalizers(
    kube: RawKube, cluster: cluster_mod.Cluster
) -> None:
    name = cluster.create_namespace("term")
    path = f"/api/v1/namespaces/{name}/configmaps"
    kube.post(path, cm("plain"))
    kube.post(path, cm("held", finalizers=["example.com/hold"]))
    deleted = kube.delete(f"/api/v1/namespaces/{name}")
    assert deleted.status == 200 and deleted.body["status"]["phase"] == "Terminating"
    assert deleted.body["spec"]["finalizers"] == ["kubernetes"]
    poll(lambda: kube.get(f"{path}/plain").status == 404)
    created = kube.post(path, cm("late"))
    assert created.status == 403 and created.reason == "Forbidden"
    assert created.message == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {name} '
        "because it is being terminated"
    )
    ns = poll(lambda: _condition(kube.get(f"/api/v1/namespaces/{name}").body, "NamespaceFinalizersRemaining"))
    assert ns["status"] == "True" and "example.com/hold" in ns["message"]
    assert kube.get(f"{path}/held").body["metadata"]["deletionTimestamp"]
    assert kube.patch(f"{path}/held", {"metadata": {"finalizers": None}}).status == 200, "updates still work"
    poll(lambda: kube.get(f"/api/v1/namespaces/{name}").status == 404, timeout=30)


def _condition(ns: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (ns.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            return dict(cond)
    return None


def test_an_active_namespace_accepts_creates(kube: RawKube, namespace: str) -> None:
    ns = kube.get(f"/api/v1/namespaces/{namespace}").body
    assert ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == namespace
    assert kube.post(f"/api/v1/namespaces/{namespace}/configmaps", cm("ok")).status == 201


def owned_by(owner: dict[str, Any], *, block: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": block,
        }
    ]


def test_background_garbage_collection_deletes_dependents(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = kube.post(path, cm("owner")).body
    kube.post(path, cm("dependent", ownerReferences=owned_by(owner)))
    kube.post(path, cm("bystander"))
    kube.delete(f"{path}/owner")
    poll(lambda: kube.get(f"{path}/dependent").status == 404)
    assert kube.get(f"{path}/bystander").status == 200


def test_a_dependent_with_another_live_owner_survives(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    first = kube.post(path, cm("first")).body
    second = kube.post(path, cm("second")).body
    refs = [*owned_by(first), {**owned_by(second)[0], "controller": False}]
    kube.post(path, cm("shared", ownerReferences=refs))
    kube.delete(f"{path}/first")
    poll(lambda: kube.get(f"{path}/first").status == 404)
    kube.post(path, cm("zz-later"))
    assert kube.get(f"{path}/shared").status == 200


def test_orphan_propagation_keeps_dependents_and_drops_the_reference(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = kube.post(path, cm("owner")).body
    kube.post(path, cm("dependent", ownerReferences=owned_by(owner)))
    kube.delete(f"{path}/owner", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"})
    poll(lambda: kube.get(f"{path}/owner").status == 404)
    dependent = kube.get(f"{path}/dependent").body
    assert "ownerReferences" not in dependent["metadata"]


def test_foreground_deletion_waits_for_blocking_dependents(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = kube.post(path, cm("owner")).body
    kube.post(
        path, cm("blocker", ownerReferences=owned_by(owner, block=True), finalizers=["example.com/hold"])
    )
    deleted = kube.delete(
        f"{path}/owner", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
    )
    assert "foregroundDeletion" in deleted.body["metadata"]["finalizers"]
    poll(lambda: kube.get(f"{path}/blocker").body["metadata"].get("deletionTimestamp"))
    assert kube.get(f"{path}/owner").status == 200, "the blocking dependent holds the owner"
    kube.patch(f"{path}/blocker", {"metadata": {"finalizers": None}})
    poll(lambda: kube.get(f"{path}/owner").status == 404)


def test_a_dependent_whose_owner_never_existed_is_collected(kube: RawKube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": "0000-not-there"}}
    kube.post(path, cm("orphan", ownerReferences=owned_by(ghost)))
    poll(lambda: kube.get(f"{path}/orphan").status == 404)


def test_an_owner_in_another_namespace_does_not_count(kube: RawKube, namespace: str, cluster: Any) -> None:
    other = cluster.create_namespace("o")
    try:
        owner = kube.post(f"/api/v1/namespaces/{other}/configmaps", cm("owner")).body
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        kube.post(path, cm("cross", ownerReferences=owned_by(owner)))
        poll(lambda: kube.get(f"{path}/cross").status == 404)
    finally:
        cluster.delete_namespace(other)


def test_a_cluster_scoped_owner_keeps_namespaced_dependents(kube: RawKube, namespace: str) -> None:
    owner = kube.get(f"/api/v1/namespaces/{namespace}").body
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("child", ownerReferences=owned_by(owner)))
    kube.post(path, cm("zz-later"))
    assert kube.get(f"{path}/child").status == 200


def binding(name: str, role: str, kind: str = "ClusterRole") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}],
    }


def test_role_ref_is_immutable(kube: RawKube, namespace: str) -> None:
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    created = kube.post(path, binding("b", "view"))
    assert created.status == 201, created.body
    changed = kube.patch(f"{path}/b", {"roleRef": {"name": "edit"}})
    assert changed.status == 422
    assert "roleRef: Invalid value" in changed.message and "cannot change roleRef" in changed.message
    same = kube.patch(f"{path}/b", {"subjects": [{"kind": "ServiceAccount", "name": "other"}]})
    assert same.status == 200, "other fields stay mutable"


def test_a_binding_without_a_valid_role_ref_kind_is_422(kube: RawKube, namespace: str) -> None:
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    response = kube.post(path, binding("b", "view", kind="Thing"))
    assert response.status == 422 and "roleRef.kind: Unsupported value" in response.message


def test_the_finalize_subresource_releases_a_terminating_namespace(
    kube: RawKube, cluster: cluster_mod.Cluster
) -> None:
    name = cluster.create_namespace("fin")
    kube.patch(f"/api/v1/namespaces/{name}", {"spec": {"finalizers": ["kubernetes", "example.com/custom"]}})
    kube.delete(f"/api/v1/namespaces/{name}")
    poll(
        lambda: (
            kube.get(f"/api/v1/namespaces/{name}").body["spec"].get("finalizers") == ["example.com/custom"]
        )
    )
    ns = kube.get(f"/api/v1/namespaces/{name}").body
    assert ns["status"]["phase"] == "Terminating", "a custom spec finalizer holds the namespace"
    released = kube.put(f"/api/v1/namespaces/{name}/finalize", {**ns, "spec": {"finalizers": []}})
    assert released.status == 200
    poll(lambda: kube.get(f"/api/v1/namespaces/{name}").status == 404)


def test_finalize_of_a_missing_namespace_is_404(kube: RawKube) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "no-such"},
        "spec": {"finalizers": []},
    }
    assert kube.put("/api/v1/namespaces/no-such/finalize", body).status == 404

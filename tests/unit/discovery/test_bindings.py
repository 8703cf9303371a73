"""The grant manifest: built deterministically, recognised only when ours, drift spotted field by field."""

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from discovery import bindings, constants

TEMPLATE = bindings.GrantTemplate(
    name="grantee",
    cluster_role="grantee-manager-role",
    subject_name="grantee",
    subject_namespace="grantee-system",
    owner="default",
)
NOW = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def test_the_grant_binds_the_configured_cluster_role_to_the_configured_subject() -> None:
    assert bindings.build_grant("team-a", template=TEMPLATE) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "grantee",
            "namespace": "team-a",
            "labels": {
                "app.kubernetes.io/managed-by": "namespace-discovery",
                "discovery.toolhive.stacklok.dev/owner": "default",
            },
            "finalizers": ["discovery.toolhive.stacklok.dev/grant"],
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "grantee-manager-role",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "grantee", "namespace": "grantee-system"}],
    }


def test_the_grant_carries_the_draining_mark_and_traceparent_when_given() -> None:
    grant = bindings.build_grant("team-a", template=TEMPLATE, draining_since=NOW, traceparent="00-abc-def-01")
    assert grant["metadata"]["annotations"] == {
        constants.DRAINING_ANNOTATION: "2026-01-02T03:04:05Z",
        constants.TRACEPARENT_ANNOTATION: "00-abc-def-01",
    }


def test_times_round_trip_at_second_precision() -> None:
    assert bindings.parse_time(bindings.format_time(NOW)) == NOW.replace(microsecond=0)
    assert bindings.parse_time("yesterday") is None
    assert bindings.parse_time(None) is None


OWNERSHIP = [
    pytest.param({}, False, id="a binding without labels is not ours"),
    pytest.param(
        {constants.MANAGED_BY_LABEL: "namespace-discovery"}, False, id="managed-by alone is not enough"
    ),
    pytest.param(
        {constants.MANAGED_BY_LABEL: "namespace-discovery", constants.OWNER_LABEL: "other"},
        False,
        id="another owner's binding is not ours",
    ),
    pytest.param(
        {constants.MANAGED_BY_LABEL: "helm", constants.OWNER_LABEL: "default"},
        False,
        id="another manager's binding is not ours",
    ),
    pytest.param(
        {constants.MANAGED_BY_LABEL: "namespace-discovery", constants.OWNER_LABEL: "default"},
        True,
        id="both labels make it ours",
    ),
]


@pytest.mark.parametrize(("labels", "managed"), OWNERSHIP)
def test_a_binding_is_ours_only_with_both_labels(labels: dict[str, str], managed: bool) -> None:
    assert bindings.is_managed({"metadata": {"labels": labels}}, owner="default") is managed


def test_the_managed_selector_names_both_labels() -> None:
    assert bindings.managed_selector("default") == (
        "app.kubernetes.io/managed-by=namespace-discovery,discovery.toolhive.stacklok.dev/owner=default"
    )


def observed(**changes: Any) -> dict[str, Any]:
    grant = bindings.build_grant("team-a", template=TEMPLATE)
    grant["metadata"].update(uid="u1", resourceVersion="7")
    grant.update(changes)
    return grant


ACCESS_DRIFT = [
    pytest.param(observed(), (), id="the desired grant has no drift"),
    pytest.param(
        observed(
            subjects=[
                {"kind": "ServiceAccount", "name": "grantee", "namespace": "grantee-system", "apiGroup": ""}
            ]
        ),
        (),
        id="an empty apiGroup on the subject is the same subject",
    ),
    pytest.param(
        observed(roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}),
        ("roleRef",),
        id="another ClusterRole is roleRef drift",
    ),
    pytest.param(
        observed(subjects=[{"kind": "ServiceAccount", "name": "intruder", "namespace": "grantee-system"}]),
        ("subjects",),
        id="another subject is subjects drift",
    ),
    pytest.param(
        observed(subjects=[*TEMPLATE.subjects, {"kind": "User", "name": "alice"}]),
        ("subjects",),
        id="an added subject is subjects drift",
    ),
    pytest.param(observed(subjects=None), ("subjects",), id="missing subjects are drift"),
]


@pytest.mark.parametrize(("rolebinding", "drift"), ACCESS_DRIFT)
def test_access_drift_names_roleref_and_subjects(rolebinding: dict[str, Any], drift: tuple[str, ...]) -> None:
    assert bindings.access_drift(rolebinding, template=TEMPLATE) == drift
    assert bindings.grants_access(rolebinding, template=TEMPLATE) is (drift == ())


def test_metadata_drift_names_the_finalizer_and_stray_handshake_annotations() -> None:
    grant = observed()
    grant["metadata"]["finalizers"] = ["someone.else/finalizer"]
    grant["metadata"]["annotations"] = {constants.RELEASED_ANNOTATION: "true"}
    assert bindings.metadata_drift(grant, template=TEMPLATE, draining=False) == (
        "finalizers",
        f"annotations[{constants.RELEASED_ANNOTATION}]",
    )
    assert bindings.metadata_drift(grant, template=TEMPLATE, draining=True) == ("finalizers",)


def test_an_update_keeps_everyone_elses_metadata_and_the_resource_version() -> None:
    grant = observed(subjects=[{"kind": "User", "name": "alice"}])
    grant["metadata"]["labels"]["team"] = "a"
    grant["metadata"]["annotations"] = {"note": "x", constants.RELEASED_ANNOTATION: "true"}
    grant["metadata"]["finalizers"] = ["someone.else/finalizer"]
    before = copy.deepcopy(grant)

    body = bindings.build_update(grant, template=TEMPLATE, draining_since=NOW)

    assert grant == before, "the observed object is never mutated"
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["labels"]["team"] == "a"
    assert body["metadata"]["annotations"] == {
        "note": "x",
        constants.DRAINING_ANNOTATION: "2026-01-02T03:04:05Z",
    }
    assert body["metadata"]["finalizers"] == ["someone.else/finalizer", constants.GRANT_FINALIZER]
    assert body["subjects"] == TEMPLATE.subjects


def test_an_update_clears_the_handshake_when_not_draining() -> None:
    grant = observed()
    grant["metadata"]["annotations"] = {
        constants.DRAINING_ANNOTATION: "x",
        constants.RELEASED_ANNOTATION: "true",
    }
    body = bindings.build_update(grant, template=TEMPLATE, draining_since=None)
    assert "annotations" not in body["metadata"]


def test_an_update_never_adds_a_finalizer_to_a_binding_being_deleted() -> None:
    grant = observed()
    grant["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    grant["metadata"]["finalizers"] = []
    body = bindings.build_update(grant, template=TEMPLATE, draining_since=NOW)
    assert "finalizers" not in body["metadata"]


def test_release_drops_only_our_finalizer() -> None:
    grant = observed()
    grant["metadata"]["finalizers"] = ["someone.else/finalizer", constants.GRANT_FINALIZER]
    release = bindings.build_release(grant)
    assert release is not None
    assert release["metadata"]["finalizers"] == ["someone.else/finalizer"]
    assert bindings.build_release(release) is None

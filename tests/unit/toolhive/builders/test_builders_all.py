"""`build_all`: every owned object, in apply order, deterministic, owned and labelled."""

from __future__ import annotations

import json

import pytest
from builders_testkit import MakeServer

from toolhive import builders, constants, names
from toolhive.api import models
from toolhive.builders import BuildConfig

RICH_SPEC = {
    "transport": "stdio",
    "replicas": 3,
    "args": ["--toolsets", "repos"],
    "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
    "secrets": [{"name": "s", "key": "k2"}, {"name": "s", "key": "k1"}],
    "resourceOverrides": {
        "proxyDeployment": {
            "labels": {"z": "1", "a": "2"},
            "env": [{"name": "Z", "value": "1"}, {"name": "A", "value": "2"}],
        },
        "proxyService": {"annotations": {"z": "1", "a": "2"}},
    },
}


def test_objects_come_in_kind_rank_order(make_server: MakeServer, config: BuildConfig) -> None:
    desired = builders.build_all(make_server(), config=config)
    assert [(m["kind"], m["metadata"]["name"]) for m in desired] == [
        ("ServiceAccount", "github-proxy-runner"),
        ("ServiceAccount", "github-sa"),
        ("Role", "github-proxy-runner"),
        ("RoleBinding", "github-proxy-runner"),
        ("ConfigMap", "github-runconfig"),
        ("Service", "mcp-github-proxy"),
        ("Deployment", "github"),
    ]
    assert len(desired) == 7


def test_waves_cover_every_kind_once_and_put_each_object_after_what_it_needs(
    make_server: MakeServer, config: BuildConfig
) -> None:
    desired = builders.build_all(make_server(), config=config)
    waves = [[m["kind"] for m in wave] for wave in desired.waves()]
    assert waves == [
        ["ServiceAccount", "ServiceAccount", "Role", "ConfigMap", "Service"],
        ["RoleBinding"],
        ["Deployment"],
    ]
    assert sorted(kind for kinds in builders.WAVES for kind in kinds) == sorted(builders.KIND_RANK)
    position = {kind: index for index, kinds in enumerate(builders.WAVES) for kind in kinds}
    # A RoleBinding needs its Role (escalation check); the Deployment's pods need everything else.
    assert position["Role"] < position["RoleBinding"] < position["Deployment"]
    assert max(position[k] for k in ("ServiceAccount", "ConfigMap", "Service")) < position["Deployment"]


def test_the_deployment_carries_the_checksum_of_the_configmap_built_with_it(
    make_server: MakeServer, config: BuildConfig
) -> None:
    by_kind = {m["kind"]: m for m in builders.build_all(make_server(**RICH_SPEC), config=config)}
    configmap, deployment = by_kind["ConfigMap"], by_kind["Deployment"]
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        template[constants.ANNOTATION_RUNCONFIG_CHECKSUM]
        == (configmap["metadata"]["annotations"][constants.ANNOTATION_CONTENT_CHECKSUM])
    )


def test_output_is_byte_identical_for_equal_input(make_server: MakeServer, config: BuildConfig) -> None:
    first = json.dumps(list(builders.build_all(make_server(**RICH_SPEC), config=config)))
    second = json.dumps(list(builders.build_all(make_server(**RICH_SPEC), config=config)))
    assert first == second


def test_input_order_of_maps_does_not_change_the_output(make_server: MakeServer, config: BuildConfig) -> None:
    reordered = json.loads(json.dumps(RICH_SPEC))
    overrides = reordered["resourceOverrides"]
    overrides["proxyDeployment"]["labels"] = {"a": "2", "z": "1"}
    overrides["proxyService"]["annotations"] = {"a": "2", "z": "1"}
    first = json.dumps(list(builders.build_all(make_server(**RICH_SPEC), config=config)))
    second = json.dumps(list(builders.build_all(make_server(**reordered), config=config)))
    assert first == second


@pytest.mark.parametrize("transport", list(models.Transport))
def test_every_object_has_a_controller_owner_and_recognisable_labels(
    make_server: MakeServer, config: BuildConfig, transport: models.Transport
) -> None:
    for manifest in builders.build_all(make_server(transport=transport.value), config=config):
        meta = manifest["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "toolhive.stacklok.dev/v1beta1",
                "kind": "MCPServer",
                "name": "github",
                "uid": "0b7c6f1e-5d0e-4a53-9d3a-3f1e2a9c8b71",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "toolhive-operator"
        assert labels["toolhive-name"] == "github"
        assert labels["toolhive"] == "true"
        assert list(labels) == sorted(labels)


def test_the_desired_state_reports_url_and_replica_cap(make_server: MakeServer, config: BuildConfig) -> None:
    desired = builders.build_all(make_server(transport="stdio", replicas=2), config=config)
    assert desired.replicas_capped is True
    assert desired.url == "http://mcp-github-proxy.team-a.svc.cluster.local:8080/mcp"


def test_build_all_accepts_the_parsed_model(config: BuildConfig) -> None:
    body = {"metadata": {"name": "x", "namespace": "ns", "uid": "u", "generation": 2}, "spec": {"image": "i"}}
    desired = builders.build_all(models.MCPServer.model_validate(body), config=config)
    assert desired.manifests[0]["metadata"]["ownerReferences"][0]["uid"] == "u"


def test_a_model_without_a_uid_is_refused_by_name() -> None:
    body = {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"image": "i"}}
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        builders.Server.from_model(models.MCPServer.model_validate(body))


def test_owner_reference_from_a_raw_body() -> None:
    reference = builders.owner_reference({"metadata": {"name": "x", "uid": "u"}})
    assert reference["uid"] == "u" and reference["controller"] is True
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        builders.owner_reference({"metadata": {"name": "x"}})


def test_a_long_name_keeps_every_name_and_label_within_limits(
    make_server: MakeServer, config: BuildConfig
) -> None:
    name = "a" * 70
    for manifest in builders.build_all(make_server(name), config=config):
        meta = manifest["metadata"]
        limit = names.DNS_LABEL_MAX if manifest["kind"] == "Service" else names.DNS_SUBDOMAIN_MAX
        assert len(meta["name"]) <= limit
        assert all(len(value) <= names.DNS_LABEL_MAX for value in meta["labels"].values())


def test_build_config_from_settings() -> None:
    from toolhive import settings

    loaded = settings.Settings(operator={"runner_image": "r:1", "image_pull_secrets": ("p",)})
    assert BuildConfig.from_settings(loaded) == BuildConfig(runner_image="r:1", image_pull_secrets=("p",))

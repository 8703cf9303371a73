"""The proxy runner Deployment: args, env, probes, restricted pods, replicas and what rolls the pods."""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders_testkit import Golden, MakeServer

from toolhive import constants
from toolhive.builders import BuildConfig, deployment


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def _template_annotations(manifest: dict[str, Any]) -> dict[str, str]:
    return manifest["spec"]["template"]["metadata"]["annotations"]


def test_the_runner_is_started_with_the_pod_patch_and_the_image(
    make_server: MakeServer, config: BuildConfig
) -> None:
    container = _container(deployment.build_proxy_deployment(make_server(), config=config))
    assert container["name"] == "toolhive"
    assert container["image"] == config.runner_image
    run, patch, image = container["args"]
    assert run == "run"
    assert json.loads(patch.removeprefix("--k8s-pod-patch=")) == {"spec": {"serviceAccountName": "github-sa"}}
    assert image == "ghcr.io/github/github-mcp-server:v0.4.0"


def test_the_proxy_runs_as_its_own_account(make_server: MakeServer, config: BuildConfig) -> None:
    pod = deployment.build_proxy_deployment(make_server(), config=config)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "github-proxy-runner"
    assert pod["terminationGracePeriodSeconds"] == 30


def test_runconfig_change_changes_the_pod_template_checksum(
    make_server: MakeServer, config: BuildConfig
) -> None:
    before = deployment.build_proxy_deployment(make_server(args=["--a"]), config=config)
    after = deployment.build_proxy_deployment(make_server(args=["--b"]), config=config)
    key = constants.ANNOTATION_RUNCONFIG_CHECKSUM
    assert _template_annotations(before)[key] != _template_annotations(after)[key]


def test_a_service_only_change_keeps_the_runconfig_checksum(
    make_server: MakeServer, config: BuildConfig
) -> None:
    before = deployment.build_proxy_deployment(make_server(), config=config)
    after = deployment.build_proxy_deployment(make_server(sessionAffinity="None"), config=config)
    key = constants.ANNOTATION_RUNCONFIG_CHECKSUM
    assert _template_annotations(before)[key] == _template_annotations(after)[key]


def test_the_generation_is_frozen_per_pod_through_the_downward_api(
    make_server: MakeServer, config: BuildConfig
) -> None:
    manifest = deployment.build_proxy_deployment(make_server(generation=9), config=config)
    assert _template_annotations(manifest)[constants.ANNOTATION_GENERATION] == "9"
    (var,) = [v for v in _container(manifest)["env"] if v["name"] == "THV_MCPSERVER_GENERATION"]
    assert var["valueFrom"]["fieldRef"] == {
        "apiVersion": "v1",
        "fieldPath": "metadata.annotations['toolhive.stacklok.dev/mcpserver-generation']",
    }


def test_required_env_is_set_and_overrides_add_to_it(make_server: MakeServer, config: BuildConfig) -> None:
    overrides = {
        "proxyDeployment": {
            "env": [
                {"name": "TOOLHIVE_DEBUG", "value": "true"},
                {"name": "THV_MCPSERVER_GENERATION", "value": "99"},
            ]
        }
    }
    env = _container(
        deployment.build_proxy_deployment(make_server(resourceOverrides=overrides), config=config)
    )["env"]
    plain = {v["name"]: v.get("value") for v in env}
    assert plain["HOME"] == "/tmp"
    assert plain["XDG_CONFIG_HOME"] == "/tmp"
    assert plain["TOOLHIVE_RUNTIME"] == "kubernetes"
    assert plain["UNSTRUCTURED_LOGS"] == "false"
    assert plain["TOOLHIVE_DEBUG"] == "true"
    assert plain["THV_MCPSERVER_GENERATION"] is None, "the generation always comes from the pod annotation"
    assert [v["name"] for v in env] == sorted(v["name"] for v in env)


def test_toolhive_secret_variables_switch_the_secrets_provider(
    make_server: MakeServer, config: BuildConfig
) -> None:
    overrides = {"proxyDeployment": {"env": [{"name": "TOOLHIVE_SECRET_API", "value": "x"}]}}
    env = _container(
        deployment.build_proxy_deployment(make_server(resourceOverrides=overrides), config=config)
    )["env"]
    assert {"name": "TOOLHIVE_SECRETS_PROVIDER", "value": "environment"} in env


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_probes_check_health_on_the_http_port(
    make_server: MakeServer, config: BuildConfig, probe: str
) -> None:
    container = _container(deployment.build_proxy_deployment(make_server(proxyPort=9090), config=config))
    assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]


def test_the_pod_meets_the_restricted_pod_security_standard(
    make_server: MakeServer, config: BuildConfig
) -> None:
    manifest = deployment.build_proxy_deployment(make_server(), config=config)
    pod = manifest["spec"]["template"]["spec"]
    security = _container(manifest)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert all("hostPath" not in volume for volume in pod["volumes"])
    mounts = {m["mountPath"]: m for m in _container(manifest)["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "tmp", "a writable /tmp, since the root filesystem is read-only"
    assert mounts["/etc/runconfig"] == {"name": "runconfig", "mountPath": "/etc/runconfig", "readOnly": True}


def test_the_uid_can_be_left_to_the_platform(make_server: MakeServer) -> None:
    manifest = deployment.build_proxy_deployment(make_server(), config=BuildConfig(run_as_user=None))
    assert "runAsUser" not in manifest["spec"]["template"]["spec"]["securityContext"]
    assert "runAsUser" not in _container(manifest)["securityContext"]


@pytest.mark.parametrize(
    ("spec", "replicas", "capped"),
    [
        pytest.param({}, None, False, id="nil replicas leaves the field to an autoscaler"),
        pytest.param({"transport": "sse", "replicas": 3}, 3, False, id="http transports scale freely"),
        pytest.param({"transport": "stdio", "replicas": 3}, 1, True, id="stdio is capped at one replica"),
        pytest.param({"transport": "stdio", "replicas": 1}, 1, False, id="one stdio replica is not a cap"),
        pytest.param({"transport": "stdio", "replicas": 0}, 0, False, id="stdio may scale to zero"),
    ],
)
def test_replicas(
    make_server: MakeServer, config: BuildConfig, spec: dict[str, Any], replicas: int | None, capped: bool
) -> None:
    server = make_server(**spec)
    manifest = deployment.build_proxy_deployment(server, config=config)
    assert manifest["spec"].get("replicas") == replicas
    assert ("replicas" in manifest["spec"]) is (replicas is not None)
    assert deployment.decide_replicas(server.spec) == deployment.ReplicaPlan(replicas=replicas, capped=capped)


def test_overrides_add_metadata_but_never_replace_the_operators(
    make_server: MakeServer, config: BuildConfig
) -> None:
    overrides = {
        "proxyDeployment": {
            "labels": {"team": "a", "toolhive-name": "spoofed"},
            "annotations": {"owner": "team-a"},
            "podTemplateMetadataOverrides": {
                "labels": {"sidecar.istio.io/inject": "false", "app": "spoofed"},
                "annotations": {
                    constants.ANNOTATION_RUNCONFIG_CHECKSUM: "stale",
                    "prometheus.io/scrape": "true",
                },
            },
        }
    }
    manifest = deployment.build_proxy_deployment(make_server(resourceOverrides=overrides), config=config)
    assert manifest["metadata"]["labels"]["team"] == "a"
    assert manifest["metadata"]["labels"]["toolhive-name"] == "github"
    assert manifest["metadata"]["annotations"] == {"owner": "team-a"}
    template = manifest["spec"]["template"]["metadata"]
    assert template["labels"]["sidecar.istio.io/inject"] == "false"
    assert template["labels"]["app"] == "mcpserver"
    assert template["annotations"]["prometheus.io/scrape"] == "true"
    assert template["annotations"][constants.ANNOTATION_RUNCONFIG_CHECKSUM] != "stale"
    assert manifest["spec"]["selector"]["matchLabels"] == {
        "app": "mcpserver",
        "app.kubernetes.io/instance": "github",
        "app.kubernetes.io/name": "mcpserver",
        "toolhive": "true",
        "toolhive-name": "github",
    }


def test_a_configmap_permission_profile_is_mounted_for_the_runner(
    make_server: MakeServer, config: BuildConfig
) -> None:
    server = make_server(permissionProfile={"type": "configmap", "name": "profiles", "key": "strict.json"})
    manifest = deployment.build_proxy_deployment(server, config=config)
    assert {"name": "permission-profile", "configMap": {"name": "profiles"}} in manifest["spec"]["template"][
        "spec"
    ]["volumes"]


def test_deployment_golden(make_server: MakeServer, golden: Golden) -> None:
    server = make_server(
        generation=4,
        replicas=1,
        secrets=[{"name": "github-token", "key": "token", "targetEnvName": "GITHUB_PERSONAL_ACCESS_TOKEN"}],
        resourceOverrides={
            "proxyDeployment": {
                "labels": {"team": "a"},
                "env": [{"name": "TOOLHIVE_DEBUG", "value": "true"}],
                "imagePullSecrets": [{"name": "team-registry"}],
                "podTemplateMetadataOverrides": {"annotations": {"prometheus.io/scrape": "true"}},
            }
        },
    )
    config = BuildConfig(
        runner_image="ghcr.io/stacklok/toolhive/proxyrunner:v0.44.0", image_pull_secrets=("registry",)
    )
    golden.check("deployment.json", deployment.build_proxy_deployment(server, config=config))

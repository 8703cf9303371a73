"""The `--k8s-pod-patch`: the MCP server pod's identity, secrets, resources and volumes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders_testkit import Golden, MakeServer

from toolhive.builders import podpatch


def _mcp(patch: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in patch["spec"]["containers"] if c["name"] == "mcp"]
    return container


@pytest.mark.parametrize(
    ("spec", "account"),
    [
        pytest.param({}, "github-sa", id="unset serviceAccount runs the pod as <name>-sa"),
        pytest.param({"serviceAccount": "reader"}, "reader", id="a custom serviceAccount is used as is"),
        pytest.param(
            {
                "serviceAccount": "reader",
                "podTemplateSpec": {"spec": {"serviceAccountName": "github-proxy-runner"}},
            },
            "reader",
            id="the pod template cannot borrow the proxy runner identity",
        ),
    ],
)
def test_the_mcp_pod_never_runs_as_the_proxy_runner(
    make_server: MakeServer, spec: dict[str, Any], account: str
) -> None:
    patch = podpatch.build_pod_patch(make_server(**spec))
    assert patch["spec"]["serviceAccountName"] == account


def test_secrets_become_secret_key_ref_env_on_the_mcp_container(make_server: MakeServer) -> None:
    server = make_server(
        secrets=[
            {"name": "gh", "key": "token", "targetEnvName": "GITHUB_TOKEN"},
            {"name": "gh", "key": "API_URL"},
        ],
        podTemplateSpec={
            "spec": {
                "containers": [
                    {
                        "name": "mcp",
                        "env": [{"name": "GITHUB_TOKEN", "value": "x"}, {"name": "KEEP", "value": "1"}],
                    }
                ]
            }
        },
    )
    env = _mcp(podpatch.build_pod_patch(server))["env"]
    assert env == [
        {"name": "KEEP", "value": "1"},
        {"name": "API_URL", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "API_URL"}}},
        {"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}},
    ]


def test_the_users_pod_template_is_kept_and_not_modified(make_server: MakeServer) -> None:
    template = {
        "metadata": {"labels": {"team": "a"}},
        "spec": {"nodeSelector": {"pool": "mcp"}, "containers": [{"name": "sidecar", "image": "busybox"}]},
    }
    server = make_server(podTemplateSpec=template, secrets=[{"name": "gh", "key": "token"}])
    patch = podpatch.build_pod_patch(server)
    assert patch["metadata"] == {"labels": {"team": "a"}}
    assert patch["spec"]["nodeSelector"] == {"pool": "mcp"}
    assert [c["name"] for c in patch["spec"]["containers"]] == ["sidecar", "mcp"]
    assert server.spec.pod_template_spec == {
        "metadata": {"labels": {"team": "a"}},
        "spec": {"nodeSelector": {"pool": "mcp"}, "containers": [{"name": "sidecar", "image": "busybox"}]},
    }


def test_resources_go_to_the_mcp_container_and_the_template_wins_per_amount(make_server: MakeServer) -> None:
    server = make_server(
        resources={"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}},
        podTemplateSpec={
            "spec": {"containers": [{"name": "mcp", "resources": {"limits": {"memory": "1Gi"}}}]}
        },
    )
    assert _mcp(podpatch.build_pod_patch(server))["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "100m"},
    }


def test_host_path_volumes_are_mounted_into_the_mcp_container(make_server: MakeServer) -> None:
    server = make_server(
        volumes=[{"name": "data", "hostPath": "/srv/data", "mountPath": "/data", "readOnly": True}]
    )
    patch = podpatch.build_pod_patch(server)
    assert patch["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv/data"}}]
    assert _mcp(patch)["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]


def test_a_plain_server_patches_only_the_account(make_server: MakeServer) -> None:
    assert podpatch.build_pod_patch(make_server()) == {"spec": {"serviceAccountName": "github-sa"}}


def test_the_rendered_patch_is_compact_sorted_json(make_server: MakeServer) -> None:
    text = podpatch.render_pod_patch(make_server(secrets=[{"name": "gh", "key": "token"}]))
    assert " " not in text
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_podpatch_golden(make_server: MakeServer, golden: Golden) -> None:
    server = make_server(
        secrets=[{"name": "github-token", "key": "token", "targetEnvName": "GITHUB_PERSONAL_ACCESS_TOKEN"}],
        resources={"limits": {"cpu": "500m", "memory": "256Mi"}},
        volumes=[{"name": "cache", "hostPath": "/var/cache/mcp", "mountPath": "/cache"}],
        podTemplateSpec={"spec": {"tolerations": [{"key": "mcp", "operator": "Exists"}]}},
    )
    golden.check("podpatch.json", podpatch.build_pod_patch(server))


def test_null_sections_in_the_users_template_are_treated_as_empty(make_server: MakeServer) -> None:
    server = make_server(podTemplateSpec={"spec": None}, secrets=[{"name": "gh", "key": "token"}])
    patch = podpatch.build_pod_patch(server)
    assert patch["spec"]["serviceAccountName"] == "github-sa"
    assert _mcp(patch)["env"][0]["name"] == "token"

"""Create, update and delete MCPServers with the operator running under its own, namespace-bound identity.

Each test binds the operator only in its own namespace (the static-list mode) and checks what a user
relies on: the objects and their names, the two separate identities and what each may do, the status,
updates rolling through, and deletion finishing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.operator.conftest import OperatorFactory

TRANSPORTS = ["stdio", "sse", "streamable-http"]


def objects_of(admin: harness.Admin, namespace: str, name: str) -> dict[str, Any]:
    read = admin.read
    return {
        "runner_sa": read(admin.core.read_namespaced_service_account, f"{name}-proxy-runner", namespace),
        "server_sa": read(admin.core.read_namespaced_service_account, f"{name}-sa", namespace),
        "role": read(admin.rbac.read_namespaced_role, f"{name}-proxy-runner", namespace),
        "binding": read(admin.rbac.read_namespaced_role_binding, f"{name}-proxy-runner", namespace),
        "runconfig": read(admin.core.read_namespaced_config_map, f"{name}-runconfig", namespace),
        "service": read(admin.core.read_namespaced_service, f"mcp-{name}-proxy", namespace),
        "deployment": read(admin.apps.read_namespaced_deployment, name, namespace),
    }


def wait_for_objects(admin: harness.Admin, namespace: str, name: str) -> dict[str, Any]:
    return cluster_mod.poll(
        lambda: (found := objects_of(admin, namespace, name)) and all(found.values()) and found,
        timeout=20,
        message=f"objects of {namespace}/{name}",
    )


def verbs_for(role: dict[str, Any], resource: str) -> set[str]:
    return {verb for rule in role["rules"] if resource in rule["resources"] for verb in rule["verbs"]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_mcpserver_gets_its_objects_two_identities_and_a_url(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory, transport: str
) -> None:
    start_operator([namespace])
    admin.create_mcpserver(namespace, "github", transport=transport)
    found = wait_for_objects(admin, namespace, "github")

    server = admin.get_mcpserver(namespace, "github")
    assert server is not None
    for kind, obj in found.items():
        owners = obj["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == [
            ("MCPServer", "github", True)
        ], kind
        assert owners[0]["uid"] == server["metadata"]["uid"]

    # The proxy runner and the MCP server never share an identity.
    pod = found["deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "github-proxy-runner"
    patch = next(a for a in pod["containers"][0]["args"] if a.startswith("--k8s-pod-patch="))
    assert json.loads(patch.split("=", 1)[1])["spec"]["serviceAccountName"] == "github-sa"
    assert found["server_sa"]["automountServiceAccountToken"] is False
    assert found["binding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "github-proxy-runner", "namespace": namespace}
    ]
    # pods/attach only where the proxy must attach to the server's stdin.
    attach = verbs_for(found["role"], "pods/attach")
    assert attach == ({"create", "get"} if transport == "stdio" else set())
    assert verbs_for(found["role"], "statefulsets") >= {
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    assert found["service"]["spec"]["ports"][0]["port"] == 8080
    assert "runconfig.json" in found["runconfig"]["data"]

    if admin.cluster.is_loopback:  # readiness needs pods; the loopback's simulator provides them
        status = cluster_mod.poll(
            lambda: (s := admin.status(namespace, "github")).get("phase") == "Ready" and s, timeout=20
        )
        assert status["url"].startswith(f"http://mcp-github-proxy.{namespace}.svc.cluster.local:8080/")
        assert status["observedGeneration"] == server["metadata"]["generation"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"


def test_a_custom_service_account_replaces_the_generated_one(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    # The operator waits for a named ServiceAccount to exist (ServiceAccountFound), so create it first.
    admin.core.create_namespaced_service_account(
        namespace, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "fetch-identity"}}
    )
    admin.create_mcpserver(namespace, "fetch", transport="streamable-http", serviceAccount="fetch-identity")
    deployment = cluster_mod.poll(
        lambda: admin.read(admin.apps.read_namespaced_deployment, "fetch", namespace), timeout=20
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    patch = json.loads(next(a for a in args if a.startswith("--k8s-pod-patch=")).split("=", 1)[1])
    assert patch["spec"]["serviceAccountName"] == "fetch-identity"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "fetch-proxy-runner"
    assert not admin.exists(admin.core.read_namespaced_service_account, "fetch-sa", namespace)


def test_a_spec_update_rolls_the_deployment(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    admin.create_mcpserver(namespace, "github", transport="sse")
    wait_for_objects(admin, namespace, "github")
    admin.patch_mcpserver(namespace, "github", {"spec": {"image": "ghcr.io/example/mcp-server:2.0"}})

    def rolled() -> bool:
        deployment = admin.read(admin.apps.read_namespaced_deployment, "github", namespace) or {}
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return args[-1] == "ghcr.io/example/mcp-server:2.0"

    cluster_mod.poll(rolled, timeout=20, message="Deployment runs the new image")
    server = admin.get_mcpserver(namespace, "github")
    assert server is not None
    cluster_mod.poll(
        lambda: (
            admin.status(namespace, "github").get("observedGeneration") == server["metadata"]["generation"]
        ),
        timeout=20,
    )


def test_deleting_an_mcpserver_finishes_and_cleans_up_what_the_runner_made(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    admin.create_mcpserver(namespace, "github", transport="stdio")
    wait_for_objects(admin, namespace, "github")
    if admin.cluster.is_loopback:  # the simulated runner's StatefulSet, adopted by the operator
        cluster_mod.poll(
            lambda: (
                (s := admin.read(admin.apps.read_namespaced_stateful_set, "github", namespace))
                and s["metadata"].get("ownerReferences")
            ),
            timeout=20,
        )
    admin.delete_mcpserver(namespace, "github")
    cluster_mod.poll(lambda: admin.get_mcpserver(namespace, "github") is None, timeout=20, message="deleted")
    cluster_mod.poll(
        lambda: not admin.exists(admin.apps.read_namespaced_stateful_set, "github", namespace), timeout=20
    )
    cluster_mod.poll(
        lambda: not admin.exists(admin.apps.read_namespaced_deployment, "github", namespace), timeout=20
    )


def test_an_invalid_spec_fails_naming_the_field_and_creates_nothing(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    # The API server accepts this (podTemplateSpec is free-form); the operator's validation does not.
    admin.create_mcpserver(
        namespace, "broken", podTemplateSpec={"spec": {"containers": [{"name": "sidecar"}]}}
    )
    status = cluster_mod.poll(
        lambda: (s := admin.status(namespace, "broken")).get("phase") == "Failed" and s, timeout=20
    )
    assert "spec.podTemplateSpec" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["PodTemplateValid"]["status"] == "False"
    assert "spec.podTemplateSpec" in conditions["PodTemplateValid"]["message"]
    assert not admin.exists(admin.apps.read_namespaced_deployment, "broken", namespace)
    assert not admin.exists(admin.core.read_namespaced_service_account, "broken-proxy-runner", namespace)


def test_an_mcpserver_outside_the_served_namespaces_is_left_alone(
    admin: harness.Admin, cluster: cluster_mod.Cluster, namespace: str, start_operator: OperatorFactory
) -> None:
    other = cluster.create_namespace("other")
    try:
        start_operator([namespace])
        admin.create_mcpserver(other, "ignored")
        admin.create_mcpserver(namespace, "served")
        wait_for_objects(admin, namespace, "served")
        ignored = admin.get_mcpserver(other, "ignored")
        assert ignored is not None
        assert not ignored.get("status") and not ignored["metadata"].get("finalizers")
        assert not admin.exists(admin.apps.read_namespaced_deployment, "ignored", other)
    finally:
        cluster.delete_namespace(other)

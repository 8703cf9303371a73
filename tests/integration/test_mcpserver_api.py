"""The generated CRDs on an API server: installed by kubectl, ToolHive manifests accepted, bad ones refused.

Runs against the session's cluster (the loopback API unless TOOLHIVE_TEST_KUBECONFIG names a real one).
The API server's schema and the operator's own validation must agree on which field is wrong.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests import cluster as cluster_mod
from toolhive.api import validation

REPO = pathlib.Path(__file__).parents[2]
CRDS = REPO / "crds"
MANIFESTS = REPO / "tests" / "manifests"
VALID = sorted(MANIFESTS.glob("*.yaml"))
KUBECTL = shutil.which("kubectl")
GROUP = "toolhive.stacklok.dev"


def kubectl(
    kubeconfig: pathlib.Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(kubeconfig.parent)},
    )


@pytest.fixture(scope="module")
def installed(cluster: cluster_mod.Cluster) -> cluster_mod.Cluster:
    """The CRDs from crds/, installed (idempotently) and served."""
    import kubernetes

    with cluster.api_client() as client:
        crd_api = kubernetes.client.ApiextensionsV1Api(client)
        for path in sorted(CRDS.glob("*.yaml")):
            body = yaml.safe_load(path.read_text(encoding="utf-8"))
            try:
                crd_api.create_custom_resource_definition(body)
            except kubernetes.client.ApiException as exc:
                assert exc.status == 409, exc.body
                current = crd_api.read_custom_resource_definition(body["metadata"]["name"])
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                crd_api.replace_custom_resource_definition(body["metadata"]["name"], body)

        def established() -> bool:
            for path in CRDS.glob("*.yaml"):
                name = yaml.safe_load(path.read_text(encoding="utf-8"))["metadata"]["name"]
                status = crd_api.read_custom_resource_definition(name).status
                if not any(c.type == "Established" and c.status == "True" for c in status.conditions or []):
                    return False
            return True

        cluster_mod.poll(established, message="CRDs established")
    return cluster


def create(
    cluster: cluster_mod.Cluster, namespace: str, body: dict[str, Any], **query: Any
) -> dict[str, Any]:
    import kubernetes

    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    version = body["apiVersion"].split("/")[1]
    with cluster.api_client() as client:
        created: dict[str, Any] = kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
            GROUP, version, namespace, "mcpservers", body, **query
        )
    return created


def test_the_api_server_accepts_the_generated_crds(installed: cluster_mod.Cluster) -> None:
    import kubernetes

    with installed.api_client() as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        beta = {resource.name: resource for resource in custom.get_api_resources(GROUP, "v1beta1").resources}
        alpha = {
            resource.name: resource for resource in custom.get_api_resources(GROUP, "v1alpha1").resources
        }
    assert beta["mcpservers"].short_names == ["mcpserver", "mcpservers"]
    assert beta["mcpservers"].namespaced is True
    assert "mcpservers/status" in beta
    assert "mcpservers" in alpha  # deprecated but served
    assert alpha["namespacediscoveries"].namespaced is False
    assert "namespacediscoveries" not in beta


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_toolhive_manifest_is_stored_and_still_valid(
    installed: cluster_mod.Cluster, namespace: str, path: pathlib.Path
) -> None:
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    stored = create(installed, namespace, body)
    for key, value in body["spec"].items():
        assert stored["spec"][key] == value, f"spec.{key} changed on the way in"
    assert stored["spec"]["proxyPort"] == body["spec"].get("proxyPort", 8080)  # defaulted by the schema
    checked = validation.check(stored)
    assert checked.problems == ()


def test_an_out_of_range_port_is_refused_naming_the_field_as_the_operator_does(
    installed: cluster_mod.Cluster, namespace: str
) -> None:
    import kubernetes

    body = yaml.safe_load((MANIFESTS / "invalid" / "proxy-port-too-large.yaml").read_text(encoding="utf-8"))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        create(installed, namespace, body)
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    fields = [cause.get("field") for cause in status["details"]["causes"]]
    assert fields == ["spec.proxyPort"]
    assert "65535" in status["message"]
    assert [problem.field_path for problem in validation.check(body).problems] == fields


def test_an_unknown_transport_is_refused_naming_the_field(
    installed: cluster_mod.Cluster, namespace: str
) -> None:
    import kubernetes

    body = yaml.safe_load((MANIFESTS / "invalid" / "unknown-transport.yaml").read_text(encoding="utf-8"))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        create(installed, namespace, body)
    assert caught.value.status == 422
    assert "spec.transport" in json.loads(caught.value.body)["message"]


@pytest.fixture
def kubectl_kubeconfig(installed: cluster_mod.Cluster) -> pathlib.Path:
    """The admin kubeconfig kubectl can use (HTTPS: kubectl sends no token over plain HTTP)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    return installed.kubectl_kubeconfig


def test_kubectl_dry_runs_the_crds_and_applies_a_manifest(
    kubectl_kubeconfig: pathlib.Path, namespace: str
) -> None:
    kubeconfig = kubectl_kubeconfig
    dry_run = kubectl(kubeconfig, "apply", "--dry-run=client", "-f", str(CRDS))
    assert dry_run.returncode == 0, dry_run.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/mcpservers.toolhive.stacklok.dev" in dry_run.stdout

    text = (MANIFESTS / "stdio.yaml").read_text(encoding="utf-8").replace("toolhive-system", namespace)
    applied = kubectl(kubeconfig, "apply", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    got = kubectl(kubeconfig, "get", "mcpserver", "fetch", "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["spec"]["transport"] == "stdio"


def test_strict_field_validation_rejects_a_misspelt_field(
    installed: cluster_mod.Cluster, namespace: str
) -> None:
    import kubernetes

    body = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "MCPServer",
        "metadata": {"name": "typo"},
        "spec": {"image": "mcp/fetch", "tranport": "sse"},
    }
    with pytest.raises(kubernetes.client.ApiException) as caught:
        create(installed, namespace, body, field_validation="Strict")
    assert "tranport" in json.loads(caught.value.body)["message"]
    assert [str(problem) for problem in validation.check(body).problems] == ["spec.tranport: unknown field"]


def test_unsupported_toolhive_fields_are_stored_not_pruned(
    installed: cluster_mod.Cluster, namespace: str
) -> None:
    body = yaml.safe_load((MANIFESTS / "unsupported-fields.yaml").read_text(encoding="utf-8"))
    stored = create(installed, namespace, body, field_validation="Strict")
    assert stored["spec"]["sessionStorage"] == body["spec"]["sessionStorage"]
    assert validation.check(stored).unsupported == tuple(sorted(
        ["audit", "backendReplicas", "groupRef", "proxyReadTimeout", "proxyWriteTimeout", "sessionStorage",
         "telemetryConfigRef"]
    ))  # fmt: skip

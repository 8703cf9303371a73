"""kubectl drives the loopback API: get, apply, label, delete; skips without kubectl.

kubectl sends bearer tokens only over TLS, so this module runs its own `LoopbackApi(tls=True)`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.rawkube import RawKube
from toolhive.testing import LoopbackApi

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        result = subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackApi]:
    with LoopbackApi(tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def kubectl(api: LoopbackApi, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    return Kubectl(api.write_kubeconfig(home / "kubeconfig"), home)


@pytest.fixture(scope="module")
def raw(api: LoopbackApi, tmp_path_factory: pytest.TempPathFactory) -> RawKube:
    return RawKube(api.write_kubeconfig(tmp_path_factory.mktemp("raw") / "kubeconfig"))


MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {namespace}
data:
  greeting: {greeting}
"""


def test_kubectl_get_lists_namespaces(kubectl: Kubectl) -> None:
    out = kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(out)


def test_kubectl_apply_creates_then_updates(kubectl: Kubectl, raw: RawKube) -> None:
    raw.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubectl-apply"}}
    )
    created = kubectl(
        "apply", "-f", "-", stdin=MANIFEST.format(name="cm", namespace="kubectl-apply", greeting="hi")
    )
    assert "configmap/cm created" in created.stdout
    updated = kubectl(
        "apply", "-f", "-", stdin=MANIFEST.format(name="cm", namespace="kubectl-apply", greeting="yo")
    )
    assert "configmap/cm configured" in updated.stdout
    body = raw.get("/api/v1/namespaces/kubectl-apply/configmaps/cm").body
    assert body["data"] == {"greeting": "yo"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in body["metadata"]["annotations"]


def test_kubectl_server_side_apply(kubectl: Kubectl, raw: RawKube) -> None:
    out = kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=MANIFEST.format(name="ssa", namespace="default", greeting="hi"),
    )
    assert "configmap/ssa serverside-applied" in out.stdout
    managers = {
        m["manager"]
        for m in raw.get("/api/v1/namespaces/default/configmaps/ssa").body["metadata"]["managedFields"]
    }
    assert "kubectl" in managers


def test_kubectl_apply_rejects_unknown_fields_server_side(kubectl: Kubectl) -> None:
    manifest = MANIFEST.format(name="strict", namespace="default", greeting="hi") + "bogus: 1\n"
    result = kubectl("apply", "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0 and 'unknown field "bogus"' in result.stderr


def test_kubectl_label_and_selector_get(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=MANIFEST.format(name="lab", namespace="default", greeting="hi"))
    assert "configmap/lab labeled" in kubectl("label", "configmap", "lab", "team=a").stdout
    names = kubectl("get", "configmaps", "-l", "team in (a,b)", "-o", "name").stdout.split()
    assert names == ["configmap/lab"]
    kubectl("label", "configmap", "lab", "team-")
    assert kubectl("get", "configmaps", "-l", "team", "-o", "name").stdout.split() == []


def test_kubectl_apply_of_an_invalid_label_fails_with_the_server_message(kubectl: Kubectl) -> None:
    manifest = MANIFEST.format(name="bad", namespace="default", greeting="hi").replace(
        "  namespace: default\n", "  namespace: default\n  labels:\n    team: -oops-\n"
    )
    result = kubectl("apply", "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0
    assert 'ConfigMap "bad" is invalid: metadata.labels: Invalid value: "-oops-"' in result.stderr


def test_kubectl_delete_and_get_of_a_missing_object(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=MANIFEST.format(name="gone", namespace="default", greeting="hi"))
    assert 'configmap "gone" deleted' in kubectl("delete", "configmap", "gone").stdout
    missing = kubectl("get", "configmap", "gone", check=False)
    assert missing.returncode != 0 and 'configmaps "gone" not found' in missing.stderr

"""In a pod the client configures itself from the service-account mount, without the `kubernetes` package."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from discovery import kube
from toolhive.testing import LoopbackApi, _tls

CONFIGMAPS = kube.Resource("", "v1", "configmaps", "ConfigMap")


def mount(directory: Path, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_text(_tls.CERT_PEM)
    return directory


def test_in_a_pod_requests_and_watches_use_the_mounted_token_and_ca_over_tls(tmp_path: Path) -> None:
    with LoopbackApi(tls=True) as server:
        port = str(urlsplit(server.https_url).port)
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        host, context, auth = kube.in_cluster(environ=environ, directory=mount(tmp_path, server.admin_token))
        assert host == f"https://127.0.0.1:{port}"

        async def scenario() -> list[tuple[str, str]]:
            api = kube.Api(host=host, ssl_context=context, auth=auth)
            try:
                await api.create(kube.NAMESPACES, {"metadata": {"name": "pod-test"}})
                _, version = await api.list(CONFIGMAPS, namespace="pod-test")
                seen: list[tuple[str, str]] = []

                async def follow() -> None:
                    async for event in api.watch(
                        CONFIGMAPS, namespace="pod-test", resource_version=version, timeout_seconds=1
                    ):
                        seen.append((event.type, event.object["metadata"]["name"]))

                watching = asyncio.create_task(follow())
                body = {"metadata": {"name": "seen", "namespace": "pod-test"}}
                await api.create(CONFIGMAPS, body, namespace="pod-test")
                await asyncio.wait_for(watching, 10)  # the server ends the stream after timeoutSeconds
                return seen
            finally:
                await api.close()

        assert asyncio.run(scenario()) == [("ADDED", "seen")]


def test_the_token_file_is_read_again_once_it_may_have_rotated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    directory = mount(tmp_path, "first")
    host, _, auth = kube.in_cluster(environ=environ, directory=directory)
    assert host == "https://[fd00::1]:443"
    assert asyncio.run(auth()) == "Bearer first"
    (directory / "token").write_text("second")
    assert asyncio.run(auth()) == "Bearer first"  # cached within the reload period
    later = time.monotonic() + kube.TOKEN_RELOAD_SECONDS
    monkeypatch.setattr(kube.time, "monotonic", lambda: later)
    assert asyncio.run(auth()) == "Bearer second"


def test_outside_a_pod_the_error_says_to_set_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"KUBERNETES_SERVICE_HOST.*set KUBECONFIG"):
        kube.in_cluster(environ={}, directory=tmp_path)
    with pytest.raises(RuntimeError, match=r"no service-account token.*set KUBECONFIG"):
        kube.in_cluster(
            environ={"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"}, directory=tmp_path
        )


def test_connecting_in_a_pod_imports_nothing_from_the_kubernetes_package(tmp_path: Path) -> None:
    directory = mount(tmp_path / "sa", "token")
    program = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from discovery import kube\n"
        f"kube.SERVICE_ACCOUNT_DIR = Path({str(directory)!r})\n"
        "async def main():\n"
        "    api = await kube.Api.connect()\n"
        "    await api.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'kubernetes'))\n"
    )
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

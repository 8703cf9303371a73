"""A kubeconfig with static credentials is read without the `kubernetes` package; anything else falls back."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery import kube, kubeconfig
from toolhive.testing import LoopbackApi, _tls


def write(path: Path, *, cluster: dict[str, Any], user: dict[str, Any], context: str = "main") -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_token_and_inline_ca_give_a_bearer_header_and_a_verifying_tls_context(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        cluster={"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(_tls.CERT_PEM)},
        user={"token": "abc"},
    )
    found = kubeconfig.load(str(path))
    assert (found.host, found.authorization, found.token_file) == (
        "https://127.0.0.1:6443",
        "Bearer abc",
        None,
    )
    assert found.ssl_context is not None and found.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert found.ssl_context.get_ca_certs(), "the inline CA is trusted"


def test_files_named_in_the_kubeconfig_are_relative_to_its_directory(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_text(_tls.CERT_PEM)
    (tmp_path / "pki" / "client.crt").write_text(_tls.CERT_PEM)
    (tmp_path / "pki" / "client.key").write_text(_tls.KEY_PEM)
    path = write(
        tmp_path / "config",
        cluster={"server": "https://localhost:6443", "certificate-authority": "pki/ca.crt"},
        user={"client-certificate": "pki/client.crt", "client-key": "pki/client.key", "tokenFile": "tok"},
    )
    found = kubeconfig.load(str(path))
    assert found.token_file == tmp_path / "tok"
    assert found.authorization is None
    assert found.ssl_context is not None and found.ssl_context.get_ca_certs()


def test_inline_client_certificates_load_and_leave_no_file_behind(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        cluster={"server": "https://localhost:6443", "insecure-skip-tls-verify": True},
        user={"client-certificate-data": b64(_tls.CERT_PEM), "client-key-data": b64(_tls.KEY_PEM)},
    )
    found = kubeconfig.load(str(path))
    assert found.ssl_context is not None and found.ssl_context.verify_mode == ssl.CERT_NONE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]


def test_basic_auth_and_a_plain_http_server(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        cluster={"server": "http://127.0.0.1:8080"},
        user={"username": "a", "password": "b"},
    )
    found = kubeconfig.load(str(path))
    assert (found.ssl_context, found.authorization) == (None, "Basic " + b64("a:b"))


@pytest.mark.parametrize(
    ("user", "cluster", "context"),
    [
        ({"exec": {"command": "aws"}}, {"server": "https://h"}, None),
        ({"auth-provider": {"name": "gcp"}}, {"server": "https://h"}, None),
        ({"token": "t"}, {"server": "https://h", "proxy-url": "http://proxy"}, None),
        ({"token": "t"}, {"server": "https://h"}, "elsewhere"),
        ({"token": "t"}, {}, None),
    ],
    ids=["exec plugin", "auth provider", "a cluster key it does not read", "unknown context", "no server"],
)
def test_what_it_does_not_read_goes_to_the_official_loader(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any], context: str | None
) -> None:
    path = write(tmp_path / "config", cluster=cluster, user=user)
    with pytest.raises(kubeconfig.NotStatic):
        kubeconfig.load(str(path), context=context)
    with pytest.raises(kubeconfig.NotStatic):
        kubeconfig.load(f"{path}:{path}")  # KUBECONFIG with several files is merged by the official loader


def test_connecting_with_a_token_kubeconfig_imports_nothing_from_the_kubernetes_package(
    tmp_path: Path,
) -> None:
    with LoopbackApi(tls=True) as server:
        path = server.write_kubeconfig(tmp_path / "config", tls=True)
        program = (
            "import asyncio, sys\n"
            "from discovery import kube\n"
            "async def main():\n"
            f"    api = await kube.Api.connect(kubeconfig={str(path)!r})\n"
            "    try:\n"
            "        await api.create(kube.NAMESPACES, {'metadata': {'name': 'lean-kubeconfig'}})\n"
            "    finally:\n"
            "        await api.close()\n"
            "asyncio.run(main())\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'kubernetes'))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]"  # and the create above was authenticated, or it had raised


def test_an_exec_plugin_kubeconfig_still_connects_through_the_official_loader(tmp_path: Path) -> None:
    with LoopbackApi() as server:
        credential = {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": server.admin_token},
        }
        path = write(
            tmp_path / "config",
            cluster={"server": server.http_url},
            user={
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": sys.executable,
                    "args": ["-c", f"print({json.dumps(credential)!r})"],
                    "interactiveMode": "Never",
                }
            },
        )

        async def scenario() -> None:
            api = await kube.Api.connect(kubeconfig=str(path))
            try:
                await api.create(kube.NAMESPACES, {"metadata": {"name": "exec-plugin"}})
            finally:
                await api.close()

        asyncio.run(scenario())

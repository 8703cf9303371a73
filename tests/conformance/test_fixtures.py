"""The test fixtures themselves: KUBECONFIG isolation, tokens and kubeconfigs, poll, unique namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube
from toolhive.testing import LoopbackApi


def test_a_stray_kubeconfig_never_reaches_the_tests() -> None:
    assert "KUBECONFIG" not in os.environ


def test_open_cluster_ignores_kubeconfig_and_defaults_to_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/production/kubeconfig")
    monkeypatch.delenv(cluster_mod.ENV_KUBECONFIG, raising=False)
    handle = cluster_mod.open_cluster(tmp_path)
    try:
        assert handle.is_loopback and handle.url.startswith("http://127.0.0.1:")
        assert "KUBECONFIG" not in os.environ
    finally:
        assert handle.loopback is not None
        handle.loopback.stop()


def test_open_cluster_uses_the_explicit_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real.kubeconfig"
    monkeypatch.setenv(cluster_mod.ENV_KUBECONFIG, str(real))
    handle = cluster_mod.open_cluster(tmp_path)
    assert not handle.is_loopback and handle.kubeconfig == real


def test_kubeconfig_for_a_serviceaccount_token_authenticates_as_it(
    cluster: cluster_mod.Cluster, kube: RawKube, namespace: str
) -> None:
    import kubernetes

    kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "who"}},
    )
    path = cluster.kubeconfig_for(cluster.token_for_serviceaccount(namespace, "who"), namespace=namespace)
    with cluster.api_client(path) as client, pytest.raises(kubernetes.client.ApiException) as denied:
        kubernetes.client.CoreV1Api(client).list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:who" in str(denied.value.body)


def test_the_namespace_fixture_creates_a_unique_active_namespace(kube: RawKube, namespace: str) -> None:
    assert namespace.startswith("t-")
    assert kube.get(f"/api/v1/namespaces/{namespace}").body["status"]["phase"] == "Active"


def test_poll_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", "done"])
    assert cluster_mod.poll(lambda: next(values), timeout=1, interval=0) == "done"


def test_poll_raises_with_the_last_value_on_timeout() -> None:
    with pytest.raises(cluster_mod.PollTimeout, match=r"last value: \[\]"):
        cluster_mod.poll(list, timeout=0.05, interval=0.01)


def test_loopback_api_is_a_context_manager_with_a_working_kubeconfig(tmp_path: Path) -> None:
    import kubernetes

    with LoopbackApi() as api:
        assert api.url.startswith("http://127.0.0.1:")
        path = api.write_kubeconfig(tmp_path / "kc")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with kubernetes.config.new_client_from_config(config_file=str(path)) as client:
            names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert api._thread is None, "stop() joins the server thread"


def test_the_loopback_api_also_listens_on_https_for_kubectl(tmp_path: Path) -> None:
    with LoopbackApi() as api:
        assert api.url == api.http_url and api.https_url.startswith("https://127.0.0.1:")
        secure = RawKube(api.write_kubeconfig(tmp_path / "kc", tls=True))
        assert secure.base == api.https_url
        assert secure.get("/api/v1/namespaces/default").status == 200, "the CA in the kubeconfig verifies"


def test_kubernetes_aio_works_over_both_listeners(tmp_path: Path) -> None:
    import asyncio

    import kubernetes.aio

    async def names(path: Path) -> list[str]:
        config = kubernetes.aio.client.Configuration()
        await kubernetes.aio.config.load_kube_config(config_file=str(path), client_configuration=config)
        async with kubernetes.aio.client.ApiClient(config) as client:
            found = await kubernetes.aio.client.CoreV1Api(client).list_namespace()
        await asyncio.sleep(0)  # let TLS transports finish closing inside this loop
        return [n.metadata.name for n in found.items]

    with LoopbackApi() as api:
        plain = asyncio.run(names(api.write_kubeconfig(tmp_path / "plain")))
        secure = asyncio.run(names(api.write_kubeconfig(tmp_path / "tls", tls=True)))
    assert plain == secure == ["default", "kube-node-lease", "kube-public", "kube-system"]

"""Fixtures for the journey tests: install the chart, run its two processes, read the cluster back.

`install_chart(values)` installs into the session's cluster (render + apply on the loopback API,
`helm install` on a real cluster) and uninstalls afterwards; `run_processes(installation)` starts the
operator and discovery as subprocesses with the chart's environment and their own ServiceAccount tokens;
`kube` is a small reader on the admin client; `make_namespace` creates namespaces deleted afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest

from tests import cluster as cluster_mod
from toolhive.testing import install, processes

GROUP = "toolhive.stacklok.dev"
VERSION = "v1alpha1"
T = TypeVar("T")
LABEL = "toolhive.stacklok.dev/enabled"
GRANT = "toolhive-operator"


class Kube:
    """Reads and writes through the admin client, returning plain dicts (None for 404)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)

    def _get(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            result = fn(*args)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result if isinstance(result, dict) else self.client.sanitize_for_serialization(result)

    def mcpservers(self, namespace: str) -> list[dict[str, Any]]:
        found = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers")
        return list(found.get("items") or [])

    def delete_mcpservers(self, namespace: str) -> None:
        for item in self.mcpservers(namespace):
            self.delete_mcpserver(namespace, item["metadata"]["name"])

    def namespace_exists(self, name: str) -> bool:
        return self._get(self.core.read_namespace, name) is not None

    def rolebinding(self, namespace: str, name: str = GRANT) -> dict[str, Any] | None:
        return self._get(self.rbac.read_namespaced_role_binding, name, namespace)

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.apps.read_namespaced_deployment, name, namespace)

    def mcpserver(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "mcpservers", name
        )

    def membership(self, name: str = "toolhive-operator") -> dict[str, Any]:
        found = self._get(self.custom.get_cluster_custom_object, GROUP, VERSION, "namespacediscoveries", name)
        return dict((found or {}).get("status") or {})

    def create_mcpserver(self, namespace: str, name: str = "fetch") -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:latest", "transport": "streamable-http"},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", body)

    def delete_mcpserver(self, namespace: str, name: str = "fetch") -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", name)

    def label(self, namespace: str, value: str | None) -> None:
        self.core.patch_namespace(namespace, {"metadata": {"labels": {LABEL: value}}})


@pytest.fixture
def kube(cluster: cluster_mod.Cluster) -> Iterator[Kube]:
    with cluster.api_client() as client:
        yield Kube(client)


@pytest.fixture
def created_namespaces() -> list[str]:
    """Names of the namespaces this test created (shared by `make_namespace` and `run_processes`)."""
    return []


@pytest.fixture
def make_namespace(
    cluster: cluster_mod.Cluster, created_namespaces: list[str]
) -> Iterator[Callable[..., str]]:
    """Create a uniquely named namespace (optionally labelled for onboarding); deleted after the test."""

    def make(prefix: str, *, labelled: bool = False) -> str:
        name = cluster.create_namespace(prefix, labels={LABEL: "true"} if labelled else None)
        created_namespaces.append(name)
        return name

    yield make
    for name in created_namespaces:
        cluster.delete_namespace(name)


@pytest.fixture
def install_chart(
    cluster: cluster_mod.Cluster, tmp_path: Path
) -> Iterator[Callable[[Mapping[str, Any]], install.Installation]]:
    """Install the chart with the given values (once per test); uninstalled at teardown."""
    done: list[install.Installation] = []

    def do(values: Mapping[str, Any]) -> install.Installation:
        installation = install.install(
            values,
            admin_kubeconfig=cluster.kubeconfig,
            workdir=tmp_path / "install",
            use_helm_install=not cluster.is_loopback,
        )
        done.append(installation)
        return installation

    yield do
    for installation in done:
        install.uninstall(installation, admin_kubeconfig=cluster.kubeconfig, workdir=tmp_path / "install")


@pytest.fixture
def run_processes(
    tmp_path: Path, cluster: cluster_mod.Cluster, kube: Kube, created_namespaces: list[str]
) -> Iterator[Callable[..., dict[str, processes.Process]]]:
    """Start the installation's processes (subprocesses, chart env, own tokens); stopped at teardown.

    Before they stop, the test's namespaces are deleted and awaited, so the operator and discovery
    finalize them (on a real cluster nothing is left terminating behind a finalizer).
    """
    with contextlib.ExitStack() as stack:

        def start(
            installation: install.Installation, *, extra_env: Mapping[str, Mapping[str, str]] | None = None
        ) -> dict[str, processes.Process]:
            running = processes.running(installation, logdir=tmp_path / "logs", extra_env=extra_env)
            return stack.enter_context(running)

        yield start
        # MCPServers first: in static-list mode nothing keeps the chart's RoleBinding alive while a
        # namespace terminates, so a namespace deleted with MCPServers in it can strand their finalizer
        # (the grant can go before the operator finalizes). Discovery's grants carry a finalizer for this.
        for name in created_namespaces:
            kube.delete_mcpservers(name)
        cluster_mod.poll(
            lambda: not any(kube.mcpservers(name) for name in created_namespaces),
            timeout=60,
            message="the test's MCPServers are finalized while the processes still run",
        )
        for name in created_namespaces:
            cluster.delete_namespace(name)
        cluster_mod.poll(
            lambda: not any(kube.namespace_exists(name) for name in created_namespaces),
            timeout=60,
            message="the test's namespaces are gone while the processes still run",
        )


def logs_of(started: Mapping[str, processes.Process]) -> str:
    """Every process's log tail, for assertion messages."""
    return "\n".join(f"--- {name} (alive: {p.alive()})\n{p.tail()}" for name, p in started.items())


def wait_for(
    fn: Callable[[], T], *, what: str, started: Mapping[str, processes.Process], timeout: float = 20.0
) -> T:
    """`poll(fn)`; on timeout the failure names `what` and carries the processes' log tails."""
    try:
        return cluster_mod.poll(fn, timeout=timeout, message=what)
    except cluster_mod.PollTimeout as timeout_error:
        raise cluster_mod.PollTimeout(f"{timeout_error}\n{logs_of(started)}") from timeout_error

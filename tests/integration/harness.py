"""Shared integration harness: install CRDs and RBAC, run a process in its own thread, read objects.

Works against the session's cluster (loopback API or the real cluster of TOOLHIVE_TEST_KUBECONFIG): every
step goes through the API with the official sync client, never through loopback internals. Processes
under test (the operator, discovery) run in a background thread with their own event loop and their own
ServiceAccount token, as in a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from tests import cluster as cluster_mod
from toolhive import rbac_rules

REPO = Path(__file__).parents[2]
GROUP = "toolhive.stacklok.dev"
VERSION = "v1beta1"
Body = dict[str, Any]


def install_crds(cluster: cluster_mod.Cluster) -> None:
    """Create or update every CRD in crds/ (idempotent, safe to call from many fixtures)."""
    with cluster.api_client() as client:
        crd_api = kubernetes.client.ApiextensionsV1Api(client)
        for path in sorted((REPO / "crds").glob("*.yaml")):
            body = yaml.safe_load(path.read_text(encoding="utf-8"))
            try:
                crd_api.create_custom_resource_definition(body)
            except kubernetes.client.ApiException as exc:
                if exc.status != 409:
                    raise
                current = crd_api.read_custom_resource_definition(body["metadata"]["name"])
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                crd_api.replace_custom_resource_definition(body["metadata"]["name"], body)


class Admin:
    """Thin admin-side helpers over the official sync client (a different client than the operator's)."""

    def __init__(self, cluster: cluster_mod.Cluster) -> None:
        self.cluster = cluster
        self.client = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)

    def close(self) -> None:
        self.client.close()

    # -- MCPServers -----------------------------------------------------------------------------------

    def create_mcpserver(self, namespace: str, name: str, **spec: Any) -> Body:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "ghcr.io/example/mcp-server:1.0", **spec},
        }
        return dict(
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", body)
        )

    def get_mcpserver(self, namespace: str, name: str) -> Body | None:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", name)
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_mcpserver(self, namespace: str, name: str, patch: Body) -> Body:
        return dict(
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", name, patch)
        )

    def delete_mcpserver(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", name)

    def status(self, namespace: str, name: str) -> Body:
        server = self.get_mcpserver(namespace, name) or {}
        return dict(server.get("status") or {})

    # -- plain reads ------------------------------------------------------------------------------------

    def exists(self, read: Callable[..., Any], *args: Any) -> bool:
        try:
            read(*args)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read(self, read: Callable[..., Any], *args: Any) -> Body | None:
        try:
            return dict(self.client.sanitize_for_serialization(read(*args)))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


class OperatorRbac:
    """The operator's identity as the chart creates it: ServiceAccount + ClusterRole, bound per namespace."""

    def __init__(self, admin: Admin, *, release_namespace: str, cluster_role: str) -> None:
        self.admin = admin
        self.release_namespace = release_namespace
        self.cluster_role = cluster_role
        self.service_account = "toolhive-operator"
        self._cluster_scoped: list[str] = []

    def install(self) -> None:
        admin = self.admin
        admin.core.create_namespaced_service_account(
            self.release_namespace,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.service_account}},
        )
        admin.rbac.create_cluster_role(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": self.cluster_role},
                "rules": [rule.as_manifest() for rule in rbac_rules.OPERATOR_CLUSTER_ROLE_RULES],
            }
        )

    def allow_leases(self) -> None:
        """Leader election: leases in the release namespace only, as the chart's Role grants."""
        namespace = self.release_namespace
        self.admin.rbac.create_namespaced_role(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "toolhive-operator-leases"},
                "rules": [
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    }
                ],
            },
        )
        self.admin.rbac.create_namespaced_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "toolhive-operator-leases"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "toolhive-operator-leases",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": self.service_account, "namespace": namespace}
                ],
            },
        )

    def uninstall(self) -> None:
        for name in self._cluster_scoped:
            with contextlib.suppress(kubernetes.client.ApiException):
                self.admin.rbac.delete_cluster_role_binding(name)
            with contextlib.suppress(kubernetes.client.ApiException):
                self.admin.rbac.delete_cluster_role(name)
        with contextlib.suppress(kubernetes.client.ApiException):
            self.admin.rbac.delete_cluster_role(self.cluster_role)

    def bind(self, namespace: str, *, name: str = "toolhive-operator") -> None:
        """Bind the operator in `namespace` (what the chart's static list or discovery does)."""
        self.admin.rbac.create_namespaced_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.cluster_role,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": self.service_account,
                        "namespace": self.release_namespace,
                    }
                ],
            },
        )

    def allow_membership_read(self, resource_name: str) -> None:
        """Cluster-scoped read of one NamespaceDiscovery object, as the chart grants in discovery mode."""
        name = f"{self.cluster_role}-read-{resource_name}"
        self.admin.rbac.create_cluster_role(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "resources": ["namespacediscoveries"],
                        "resourceNames": [resource_name],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        )
        self.admin.rbac.create_cluster_role_binding(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": self.service_account,
                        "namespace": self.release_namespace,
                    }
                ],
            }
        )
        self._cluster_scoped.append(name)

    def kubeconfig(self) -> Path:
        token = self.admin.cluster.token_for_serviceaccount(self.release_namespace, self.service_account)
        return self.admin.cluster.kubeconfig_for(token)


class Background:
    """Run `main(stop)` in a thread with its own event loop until `stop()`; re-raise what it raised."""

    def __init__(self, main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, name: str) -> None:
        self._main = main
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Background:
        self._thread.start()
        self._ready.wait(timeout=10)
        return self

    def _run(self) -> None:
        async def runner() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._main(self._stop)

        try:
            asyncio.run(runner())
        except BaseException as error:  # reported to the test by stop()
            self._error = error
            self._ready.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, *, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            raise AssertionError(f"{self._thread.name} did not stop within {timeout}s:\n{self._where()}")
        if self._error is not None:
            raise self._error

    def _where(self) -> str:
        """Where a thread that will not stop is: its stack, and the tasks still pending on its loop."""
        frame = sys._current_frames().get(self._thread.ident or 0)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
        tasks = list(asyncio.all_tasks(self._loop)) if self._loop is not None else []
        return stack + "".join(f"pending: {task!r}\n" for task in tasks[:20])


@contextlib.contextmanager
def running(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, name: str) -> Iterator[Background]:
    process = Background(main, name=name).start()
    try:
        yield process
    finally:
        process.stop()

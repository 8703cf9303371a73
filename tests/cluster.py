"""The cluster the tests run against: the loopback API by default, a real cluster only by explicit opt-in.

Used by tests/conftest.py (fixtures) and by any suite that needs a kubeconfig, ServiceAccount tokens
or unique namespaces. A real cluster is used only when `TOOLHIVE_TEST_KUBECONFIG` names a kubeconfig;
a `KUBECONFIG` that happens to be set is ignored (and removed from the test environment).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from toolhive.testing import LoopbackApi, kubeconfig

T = TypeVar("T")
ENV_KUBECONFIG = "TOOLHIVE_TEST_KUBECONFIG"


class PollTimeout(AssertionError):
    """`poll` ran out of time; the message carries the last value seen."""


def poll(fn: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, message: str = "") -> T:
    """Call `fn` until it returns something truthy and return that; raise PollTimeout after `timeout` s.

    Exceptions from `fn` count as "not yet" until the deadline, then the last one is chained.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last = fn()
            error = None
            if last:
                return last
        except Exception as exc:
            error = exc
        if time.monotonic() >= deadline:
            what = f"{message}: " if message else ""
            raise PollTimeout(f"{what}condition not met within {timeout}s; last value: {last!r}") from error
        time.sleep(interval)


def unique_name(prefix: str = "t") -> str:
    """A DNS-1123 label that no other test (or test run) uses: `<prefix>-<8 hex chars>`."""
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclasses.dataclass
class Cluster:
    """One API server for the session: where it is, how to authenticate, and what it can do."""

    kubeconfig: Path  # admin kubeconfig
    workdir: Path
    loopback: LoopbackApi | None = None  # None on a real cluster
    kubectl_kubeconfig: Path | None = None  # admin kubeconfig kubectl can use (HTTPS); None: `kubeconfig`

    def __post_init__(self) -> None:
        if self.kubectl_kubeconfig is None:
            self.kubectl_kubeconfig = self.kubeconfig

    @property
    def is_loopback(self) -> bool:
        return self.loopback is not None

    @property
    def url(self) -> str:
        doc = yaml.safe_load(self.kubeconfig.read_text())
        context = _current(doc, "contexts", doc.get("current-context"))
        cluster = _current(doc, "clusters", context.get("cluster"))
        return str(cluster["server"])

    def api_client(self, kubeconfig_path: Path | None = None) -> Any:
        """A sync `kubernetes.client.ApiClient` for a kubeconfig (admin by default); no global state."""
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(kubeconfig_path or self.kubeconfig))

    def token_for_serviceaccount(self, namespace: str, name: str, *, expiration_seconds: int = 3600) -> str:
        """A bearer token for ServiceAccount namespace/name, through the TokenRequest API (works anywhere)."""
        import kubernetes

        with self.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            body = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            }
            response = core.create_namespaced_service_account_token(name, namespace, body)
            return str(response.status.token)

    def kubeconfig_for(self, token: str, *, namespace: str = "default") -> Path:
        """A kubeconfig with the admin one's server (and CA) but authenticating with `token`."""
        doc = yaml.safe_load(self.kubeconfig.read_text())
        context = _current(doc, "contexts", doc.get("current-context"))
        cluster = _current(doc, "clusters", context.get("cluster"))
        out = kubeconfig.build(str(cluster["server"]), token, namespace=namespace)
        out["clusters"][0]["cluster"] = dict(cluster)
        path = self.workdir / f"kubeconfig-{secrets.token_hex(6)}"
        path.write_text(yaml.safe_dump(out, sort_keys=False))
        path.chmod(0o600)
        return path

    def create_namespace(self, prefix: str = "t", *, labels: dict[str, str] | None = None) -> str:
        """Create a namespace with a unique name; returns the name."""
        import kubernetes

        name = unique_name(prefix)
        with self.api_client() as client:
            kubernetes.client.CoreV1Api(client).create_namespace(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
            )
        return name

    def delete_namespace(self, name: str) -> None:
        """Start deleting a namespace (404 ignored); does not wait for it to be gone."""
        import kubernetes

        with self.api_client() as client:
            try:
                kubernetes.client.CoreV1Api(client).delete_namespace(name)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise


def _current(doc: dict[str, Any], section: str, name: Any) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return dict(entry.get(section[:-1]) or {})
    raise ValueError(f"kubeconfig has no {section[:-1]} named {name!r}")


def open_cluster(workdir: Path) -> Cluster:
    """The loopback API (started, RBAC on), or the real cluster named by TOOLHIVE_TEST_KUBECONFIG."""
    os.environ.pop("KUBECONFIG", None)  # never let a developer's shell redirect the tests
    real = os.environ.get(ENV_KUBECONFIG)
    if real:
        return Cluster(kubeconfig=Path(real).expanduser(), workdir=workdir)
    api = LoopbackApi(rbac=True).start()
    return Cluster(
        kubeconfig=api.write_kubeconfig(workdir / "admin.kubeconfig"),
        kubectl_kubeconfig=api.write_kubeconfig(workdir / "admin-tls.kubeconfig", tls=True),
        workdir=workdir,
        loopback=api,
    )

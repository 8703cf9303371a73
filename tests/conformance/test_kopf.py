"""kopf (1.45) runs against the loopback API: a trivial handler, and namespace selection by label.

The operator runs in its own thread and event loop (never in the server's loop: see reference/kopf.md 1.7),
logging in through a `@kopf.on.login` handler built from the session kubeconfig.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kopf

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube


def login_handler(cluster: cluster_mod.Cluster) -> Callable[..., kopf.ConnectionInfo]:
    import kubernetes

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    keys = cfg.api_key or {}
    token = (
        str(keys.get("authorization") or keys.get("BearerToken") or "").removeprefix("Bearer ").strip()
        or None
    )

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=cfg.host,
            token=token,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            default_namespace="default",
        )

    return login


@contextmanager
def running(
    registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings, **kwargs: Any
) -> Iterator[None]:
    """Run kopf.operator() in a thread with its own loop until the block ends; re-raise its failure."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                kopf.operator(registry=registry, settings=settings, standalone=True, stop_flag=stop, **kwargs)
            )
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=main, name="kopf-under-test", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=20)
        assert not thread.is_alive(), "kopf did not stop"
        assert not errors, errors


def quiet_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 30
    settings.networking.error_backoffs = [0.1]
    return settings


def test_kopf_runs_a_create_handler_and_patches_the_object(
    cluster: cluster_mod.Cluster, kube: RawKube, namespace: str
) -> None:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login_handler(cluster))

    @kopf.on.create("v1", "configmaps", registry=registry, labels={"smoke": "yes"})
    def handle(patch: kopf.Patch, name: str, body: kopf.Body, **_: Any) -> None:
        patch.setdefault("data", {})["handled-by"] = f"kopf:{name}"
        kopf.info(body, reason="Smoke", message="smoke handler succeeded")

    settings = quiet_settings()
    settings.posting.enabled = (
        True  # kopf posts core v1 Events without kind/apiVersion: they must be accepted
    )
    with running(registry, settings, namespaces=[namespace]):
        kube.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "smoke", "labels": {"smoke": "yes"}},
            },
        )
        kube.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
        )
        done = cluster_mod.poll(
            lambda: kube.get(f"/api/v1/namespaces/{namespace}/configmaps/smoke").body.get("data"), timeout=20
        )
        assert done == {"handled-by": "kopf:smoke"}
        events = cluster_mod.poll(
            lambda: [
                e
                for e in kube.get(f"/api/v1/namespaces/{namespace}/events").body["items"]
                if e["involvedObject"].get("name") == "smoke"
            ],
            timeout=20,
        )
        assert "succeeded" in events[0]["message"]
    assert "data" not in kube.get(f"/api/v1/namespaces/{namespace}/configmaps/ignored").body


def test_kopf_namespace_label_selector_sees_label_removal_as_deleted(
    cluster: cluster_mod.Cluster, kube: RawKube
) -> None:
    key = f"smoke.example.com/{cluster_mod.unique_name('sel')}"
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login_handler(cluster))
    seen: list[tuple[str, str]] = []

    @kopf.on.event("v1", "namespaces", registry=registry)
    def observe(event: dict[str, Any], name: str, **_: Any) -> None:
        seen.append((str(event["type"]), name))

    settings = quiet_settings()
    settings.watching.label_selectors[("v1", "namespaces")] = f"{key}=true"
    name = cluster.create_namespace("sel", labels={key: "true"})
    try:
        with running(registry, settings, clusterwide=True):
            cluster_mod.poll(lambda: any(n == name for _, n in seen), timeout=20, message=str(seen))
            kube.patch(f"/api/v1/namespaces/{name}", {"metadata": {"labels": {key: None}}})
            cluster_mod.poll(lambda: ("DELETED", name) in seen, timeout=20)
        assert all(n == name for _, n in seen), "only the labelled namespace is ever seen"
        assert kube.get(f"/api/v1/namespaces/{name}").status == 200, "the namespace itself still exists"
    finally:
        cluster.delete_namespace(name)

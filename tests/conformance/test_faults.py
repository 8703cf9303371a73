"""Fault injection and the request log (loopback only: a real cluster has neither)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.conformance.rawkube import RawKube
from toolhive.testing import Faults, LoopbackApi

pytestmark = pytest.mark.loopback_only("fault injection and the request log exist only in the loopback API")


@pytest.fixture
def faults(loopback: LoopbackApi) -> Iterator[Faults]:
    yield loopback.faults
    loopback.faults.clear()


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def test_the_next_n_matching_requests_get_429_with_retry_after(
    faults: Faults, kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    faults.add(status=429, verb="list", path=f"/namespaces/{namespace}/configmaps$", count=2, retry_after=3)
    assert kube.get(f"/api/v1/namespaces/{namespace}/secrets").status == 200, "other paths are untouched"
    first, second, third = (kube.get(path) for _ in range(3))
    assert first.status == 429 and first.headers["Retry-After"] == "3"
    assert first.reason == "TooManyRequests" and first.body["details"]["retryAfterSeconds"] == 3
    assert second.status == 429 and third.status == 200


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable"), (409, "Conflict")]
)
def test_injected_statuses_carry_status_bodies(
    faults: Faults, kube: RawKube, namespace: str, status: int, reason: str
) -> None:
    faults.add(status=status, verb="create", path=f"/namespaces/{namespace}/configmaps")
    response = kube.post(f"/api/v1/namespaces/{namespace}/configmaps", cm("x"))
    assert response.status == status and response.reason == reason and response.body["kind"] == "Status"
    assert kube.post(f"/api/v1/namespaces/{namespace}/configmaps", cm("x")).status == 201, (
        "count defaults to 1"
    )


def test_a_non_error_status_is_rejected(faults: Faults) -> None:
    with pytest.raises(ValueError, match="not an HTTP error status"):
        faults.add(status=200)


def test_latency_delays_matching_requests(faults: Faults, kube: RawKube, namespace: str) -> None:
    faults.latency(0.3, path=f"/namespaces/{namespace}/configmaps", count=1)
    start = time.monotonic()
    kube.get(f"/api/v1/namespaces/{namespace}/configmaps")
    slow = time.monotonic() - start
    start = time.monotonic()
    kube.get(f"/api/v1/namespaces/{namespace}/configmaps")
    fast = time.monotonic() - start
    assert slow >= 0.3 and fast < 0.3


def test_dropped_watches_end_and_resume_from_their_resource_version(
    faults: Faults, kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = kube.get(path).body["metadata"]["resourceVersion"]
    seen: list[str] = []
    ended = threading.Event()

    def watch() -> None:
        for event in kube.watch(path, resourceVersion=rv, timeoutSeconds=30, timeout=30):
            seen.append(event["object"]["metadata"]["name"])
        ended.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    kube.post(path, cm("one"))
    cluster_mod.poll(lambda: seen == ["one"])
    assert faults.drop_watches(path=f"/namespaces/{namespace}/configmaps") == 1
    assert ended.wait(5), "the stream ends when dropped"
    last_rv = kube.get(f"{path}/one").body["metadata"]["resourceVersion"]
    kube.post(path, cm("two"))
    resumed = next(kube.watch(path, resourceVersion=last_rv, timeoutSeconds=5))
    assert resumed["object"]["metadata"]["name"] == "two"
    assert faults.drop_watches(path="nothing-matches-this") == 0


def test_the_request_log_counts_writes_by_user_and_path(
    loopback: LoopbackApi, kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    kube.post(path, cm("a"))
    kube.patch(f"{path}/a", {"data": {"k": "v"}})
    kube.get(f"{path}/a")
    kube.delete(f"{path}/a")
    log = loopback.requests
    assert log.writes(path=f"/namespaces/{namespace}/configmaps") == 3
    assert log.count("get", path=f"/namespaces/{namespace}/configmaps/a") == 1
    assert log.writes(user="admin", namespace=namespace, resource="configmaps") == 3
    assert log.writes(user="nobody", namespace=namespace) == 0
    assert log.by_verb()["create"] >= 1
    mine = [r for r in log if r.namespace == namespace and r.resource == "configmaps"]
    assert [(r.verb, r.status) for r in mine] == [
        ("create", 201),
        ("patch", 200),
        ("get", 200),
        ("delete", 200),
    ]


def test_reset_clears_the_request_log(tmp_path: Path) -> None:
    with LoopbackApi(rbac=False) as api:
        kube = RawKube(api.write_kubeconfig(tmp_path / "reset.kubeconfig"))
        kube.get("/api/v1/namespaces")
        assert len(api.requests) == 1 and api.requests.by_verb() == {"list": 1}
        api.requests.reset()
        assert len(api.requests) == 0 and api.requests.by_verb() == {}


def test_a_watch_is_logged_when_it_starts(
    faults: Faults, loopback: LoopbackApi, kube: RawKube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    thread = threading.Thread(
        target=lambda: list(kube.watch(path, timeoutSeconds=30, timeout=30)), daemon=True
    )
    thread.start()
    cluster_mod.poll(
        lambda: loopback.requests.count("watch", namespace=namespace, resource="configmaps") == 1
    )
    assert thread.is_alive(), "logged while the stream is still open"
    faults.drop_watches(path=f"/namespaces/{namespace}/configmaps")
    thread.join(5)


def test_a_client_that_goes_away_leaves_no_watcher_behind(tmp_path: Path) -> None:
    with LoopbackApi(rbac=False) as api:
        kube = RawKube(api.write_kubeconfig(tmp_path / "kc"))

        def open_watchers() -> int:
            return api.call(lambda store: sum(1 for _ in store.open_watchers()))

        stream = kube.watch("/api/v1/namespaces", timeoutSeconds=60, timeout=60)
        assert next(stream)["type"] == "ADDED"
        assert open_watchers() == 1
        stream.close()  # closes the connection mid-stream
        cluster_mod.poll(lambda: open_watchers() == 0)

"""The loopback API in its own process: same HTTP API, and the driver's reads cross the process boundary."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from toolhive.testing import remote


@pytest.fixture(scope="module")
def child() -> Iterator[remote.LoopbackProcess]:
    with remote.LoopbackProcess(rbac=True) as api:
        yield api


def _get(api: remote.LoopbackProcess, path: str, *, token: str | None = None, **fields: str) -> int:
    headers = {"Authorization": f"Bearer {token or api.admin_token}"}
    response = urllib3.request(
        "GET", api.http_url + path, headers=headers, fields=fields or None, retries=False
    )
    return response.status


def test_the_api_runs_in_another_process_and_answers_with_rbac(child: remote.LoopbackProcess) -> None:
    assert child.pid != os.getpid()
    assert _get(child, "/api/v1/namespaces/default") == 200
    robot = child.add_user("robot")
    assert _get(child, "/api/v1/namespaces/default", token=robot) == 403
    assert _get(child, "/api/v1/namespaces/default", token="not-a-token") == 401


def test_the_request_log_is_read_across_the_process_boundary(child: remote.LoopbackProcess) -> None:
    child.requests.reset()
    assert _get(child, "/api/v1/namespaces/default/configmaps") == 200
    assert child.requests.by_verb() == {"list": 1}
    assert len(child.requests) == 1
    (entry,) = list(child.requests)
    assert (entry.verb, entry.resource, entry.namespace, entry.status) == (
        "list",
        "configmaps",
        "default",
        200,
    )
    assert child.requests.count("list", resource="configmaps") == 1 and child.requests.writes() == 0


def test_open_watches_and_faults_are_reachable(child: remote.LoopbackProcess) -> None:
    pool = urllib3.PoolManager()
    stream = pool.request(
        "GET",
        child.http_url + "/api/v1/namespaces/default/configmaps",
        fields={"watch": "true", "timeoutSeconds": "30"},
        headers={"Authorization": f"Bearer {child.admin_token}"},
        preload_content=False,
    )
    deadline = time.monotonic() + 10
    while child.open_watches().get("configmaps", 0) < 1:
        assert time.monotonic() < deadline, "the watch never opened"
        time.sleep(0.05)
    assert child.faults.drop_watches(path="configmaps") == 1
    stream.release_conn()
    child.faults.add(status=503, verb="get", path="/namespaces/kube-public$", count=1)
    assert _get(child, "/api/v1/namespaces/kube-public") == 503
    assert _get(child, "/api/v1/namespaces/kube-public") == 200


def test_a_kubeconfig_points_at_the_child(child: remote.LoopbackProcess, tmp_path: Path) -> None:
    text = child.write_kubeconfig(tmp_path / "kubeconfig").read_text()
    assert child.http_url in text and child.admin_token in text


def test_calls_outside_the_allowed_set_are_refused(child: remote.LoopbackProcess) -> None:
    with pytest.raises(RuntimeError, match="not allowed"):
        child.invoke("api", "stop")


def test_stop_ends_the_child() -> None:
    api = remote.LoopbackProcess(rbac=False).start()
    pid = api.pid
    api.stop()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    with pytest.raises(RuntimeError, match="not running"):
        api.compact()

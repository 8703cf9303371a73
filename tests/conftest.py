"""Session-wide fixtures: the cluster under test (loopback API unless TOOLHIVE_TEST_KUBECONFIG is set).

`cluster` is one API server per session; `namespace` a fresh namespace per test, deleted afterwards;
`loopback` the LoopbackApi itself (skips on a real cluster). Tests marked `loopback_only` skip on a
real cluster with the reason. `KUBECONFIG` is removed from the environment before any test runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cluster as cluster_mod
from toolhive.testing import LoopbackApi

os.environ.pop("KUBECONFIG", None)


def _real_cluster() -> bool:
    return bool(os.environ.get(cluster_mod.ENV_KUBECONFIG))


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("loopback_only")
    if marker is not None and _real_cluster():
        reason = (
            marker.args[0] if marker.args else "needs a loopback-only feature (fault injection, request log)"
        )
        pytest.skip(f"loopback only: {reason}; running against {cluster_mod.ENV_KUBECONFIG}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster_mod.Cluster]:
    """The API server for this session: the loopback API (RBAC on), or the real cluster opted into."""
    handle = cluster_mod.open_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield handle
    finally:
        if handle.loopback is not None:
            handle.loopback.stop()


@pytest.fixture
def loopback(cluster: cluster_mod.Cluster) -> LoopbackApi:
    """The session's LoopbackApi (fault injection, request log); skips on a real cluster."""
    if cluster.loopback is None:
        pytest.skip(f"loopback only: needs the loopback API; running against {cluster_mod.ENV_KUBECONFIG}")
    return cluster.loopback


@pytest.fixture
def admin_kubeconfig(cluster: cluster_mod.Cluster) -> Path:
    """Path of the admin kubeconfig for the session's cluster."""
    return cluster.kubeconfig


@pytest.fixture
def namespace(cluster: cluster_mod.Cluster) -> Iterator[str]:
    """A fresh namespace (`t-<random>`) for this test, deleted afterwards (deletion is not awaited)."""
    name = cluster.create_namespace("t")
    try:
        yield name
    finally:
        cluster.delete_namespace(name)

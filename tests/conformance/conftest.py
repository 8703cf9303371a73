"""Fixtures for the loopback conformance suite: a raw HTTP client as admin on the session's cluster."""

from __future__ import annotations

import pytest

from tests import cluster as cluster_mod
from tests.conformance import rawkube


@pytest.fixture(scope="session")
def kube(cluster: cluster_mod.Cluster) -> rawkube.RawKube:
    """Admin raw client: exact status codes and Status bodies."""
    return rawkube.RawKube(cluster.kubeconfig)

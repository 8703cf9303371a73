"""Fixtures every integration suite shares: the session's admin client, with the CRDs installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import cluster as cluster_mod
from tests.integration import harness


@pytest.fixture(scope="session")
def admin(cluster: cluster_mod.Cluster) -> Iterator[harness.Admin]:
    """An admin client (official sync client) over the session's cluster, with crds/ installed."""
    harness.install_crds(cluster)
    handle = harness.Admin(cluster)
    try:
        yield handle
    finally:
        handle.close()

"""Fixtures for discovery's journeys: RBAC installed as the chart does, a discovery factory, namespaces.

`discovery_rbac` (module): a release namespace holding the operator's and discovery's ServiceAccounts, the
operator's ClusterRole (unique name) and discovery's ClusterRole/Binding from `toolhive.rbac_rules`.
`start_discovery(spec, grace_seconds=...)` (function): a NamespaceDiscovery object with a unique name and
the discovery process serving it with its own token; both go at teardown. `namespaces` makes namespaces and
deletes them afterwards; `label_key` is a label key unique to the test, so no test selects another's.
`operator_kubeconfig` authenticates as the operator's ServiceAccount (to play its side of the handshake).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.integration import discovery_harness, harness


@pytest.fixture(scope="module")
def discovery_rbac(
    cluster: cluster_mod.Cluster, admin: harness.Admin
) -> Iterator[discovery_harness.DiscoveryRbac]:
    release = cluster.create_namespace("rel")
    operator = harness.OperatorRbac(
        admin, release_namespace=release, cluster_role=f"toolhive-operator-test-{secrets.token_hex(3)}"
    )
    operator.install()
    rbac = discovery_harness.DiscoveryRbac(admin, operator=operator)
    rbac.install()
    try:
        yield rbac
    finally:
        rbac.uninstall()
        operator.uninstall()
        cluster.delete_namespace(release)


@pytest.fixture(scope="module")
def operator_kubeconfig(discovery_rbac: discovery_harness.DiscoveryRbac) -> Path:
    return discovery_rbac.operator.kubeconfig()


DiscoveryFactory = Callable[..., discovery_harness.Discovery]


@pytest.fixture
def start_discovery(
    admin: harness.Admin, discovery_rbac: discovery_harness.DiscoveryRbac
) -> Iterator[DiscoveryFactory]:
    started: list[discovery_harness.Discovery] = []

    def start(spec: dict[str, Any], **options: Any) -> discovery_harness.Discovery:
        handle = discovery_harness.Discovery(admin, discovery_rbac, spec=spec, **options).create().start()
        started.append(handle)
        return handle

    yield start
    errors: list[BaseException] = []
    for handle in started:
        try:
            handle.stop()
        except BaseException as error:  # report every process's failure, stop all of them first
            errors.append(error)
        handle.delete()
    if errors:
        raise errors[0]


@pytest.fixture
def namespaces(admin: harness.Admin) -> Iterator[discovery_harness.Namespaces]:
    handle = discovery_harness.Namespaces(admin)
    try:
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture
def label_key() -> str:
    return f"discovery-test.example.com/{secrets.token_hex(4)}"

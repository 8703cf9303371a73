"""Fixtures for the operator's integration tests: its RBAC as the chart installs it, and the operator
itself running with its own ServiceAccount token, bound only in the namespaces a test binds it in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from discovery import kube
from tests import cluster as cluster_mod
from tests.integration import harness
from toolhive import operator, settings
from toolhive.testing import workloads


@pytest.fixture(scope="module")
def operator_rbac(cluster: cluster_mod.Cluster, admin: harness.Admin) -> Iterator[harness.OperatorRbac]:
    """A release namespace with the operator's ServiceAccount and a ClusterRole unique to this module."""
    release = cluster.create_namespace("rel")
    rbac = harness.OperatorRbac(
        admin, release_namespace=release, cluster_role=f"toolhive-operator-test-{secrets.token_hex(3)}"
    )
    rbac.install()
    try:
        yield rbac
    finally:
        rbac.uninstall()
        cluster.delete_namespace(release)


@dataclasses.dataclass
class RunningOperator:
    namespaces: list[str]
    user: str
    process: harness.Background
    rbac: harness.OperatorRbac


OperatorFactory = Callable[..., RunningOperator]


@pytest.fixture
def start_operator(
    cluster: cluster_mod.Cluster, operator_rbac: harness.OperatorRbac
) -> Iterator[OperatorFactory]:
    """Start the operator (namespace scope) for this test; stopped at teardown, errors re-raised."""
    started: list[RunningOperator] = []

    def start(namespaces: list[str], *, bind: bool = True, **overrides: Any) -> RunningOperator:
        if bind:
            for namespace in namespaces:
                operator_rbac.bind(namespace)
        kubeconfig = operator_rbac.kubeconfig()
        values: dict[str, Any] = {
            "rbac": {"scope": "namespace", "watch_namespaces": namespaces},
            "observability": {"health_port": 0, "metrics_port": 0},
            "operator": {"resync_seconds": 300},
            "pod_namespace": operator_rbac.release_namespace,
        }
        for key, value in overrides.items():
            values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
        config = settings.Settings(**values)

        async def main(stop: asyncio.Event) -> None:
            tasks = [asyncio.create_task(operator.run(config, kubeconfig=str(kubeconfig), stop=stop))]
            simulator_api = None
            if cluster.is_loopback:
                # No kubelet on the loopback API: let a simulator make Deployments ready (admin token).
                simulator_api = await kube.Api.connect(kubeconfig=str(cluster.kubeconfig))
                tasks.append(asyncio.create_task(workloads.WorkloadSimulator(simulator_api).run()))
            try:
                await tasks[0]
            finally:
                for task in tasks[1:]:
                    task.cancel()
                await asyncio.gather(*tasks[1:], return_exceptions=True)
                if simulator_api is not None:
                    await simulator_api.close()

        process = harness.Background(main, name="operator").start()
        user = f"system:serviceaccount:{operator_rbac.release_namespace}:{operator_rbac.service_account}"
        running = RunningOperator(namespaces=namespaces, user=user, process=process, rbac=operator_rbac)
        started.append(running)
        return running

    yield start
    for running in started:
        running.process.stop()

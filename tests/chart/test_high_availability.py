"""High availability by default: two replicas of each process behind a Lease, probes, disruption budget.

Two replicas only help if just one acts (leader election on), the standby is kept through node drains
(a PodDisruptionBudget of minAvailable 1, only when there is more than one replica: with one it would block
every drain), the probes reach the processes' health endpoints, and the grace period outlasts the drain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart import objects
from tests.tools import helm as helm_tool
from toolhive import operator

DEPLOYMENTS = {"operator": "toolhive-operator", "discovery": "toolhive-discovery"}


@pytest.mark.parametrize(
    "component", sorted(DEPLOYMENTS), ids=lambda c: f"{c} runs two replicas under a lease"
)
def test_the_defaults_run_two_replicas_with_leader_election(
    helm: helm_tool.Helm, chart: Path, component: str
) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY)
    deployment = objects.named(docs, "Deployment", DEPLOYMENTS[component])
    assert deployment["spec"]["replicas"] == 2
    assert objects.env(deployment)["TOOLHIVE_LEADER_ELECTION__ENABLED"] == "true"


@pytest.mark.parametrize(
    "component", sorted(DEPLOYMENTS), ids=lambda c: f"{c} pods keep one replica through a drain"
)
def test_a_disruption_budget_keeps_one_replica_of_each(
    helm: helm_tool.Helm, chart: Path, component: str
) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY)
    budget = objects.named(docs, "PodDisruptionBudget", DEPLOYMENTS[component])
    deployment = objects.named(docs, "Deployment", DEPLOYMENTS[component])
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_a_single_replica_gets_no_disruption_budget_which_would_block_every_drain(
    helm: helm_tool.Helm, chart: Path
) -> None:
    values: dict[str, Any] = {
        **objects.DISCOVERY,
        "operator": {**objects.DISCOVERY["operator"], "replicaCount": 1},
        "discovery": {"replicaCount": 1},
    }
    docs = helm.template(chart, values=values)
    assert objects.of_kind(docs, "PodDisruptionBudget") == []


def test_the_cluster_mode_renders_no_discovery_budget(helm: helm_tool.Helm, chart: Path) -> None:
    docs = helm.template(chart, values=objects.CLUSTER)
    budgets = [doc["metadata"]["name"] for doc in objects.of_kind(docs, "PodDisruptionBudget")]
    assert budgets == ["toolhive-operator"]


@pytest.mark.parametrize(
    "component", sorted(DEPLOYMENTS), ids=lambda c: f"{c} probes and grace period mean something"
)
def test_probes_reach_the_health_endpoints_and_the_grace_period_outlasts_the_drain(
    helm: helm_tool.Helm, chart: Path, component: str
) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY)
    pod = objects.named(docs, "Deployment", DEPLOYMENTS[component])["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = objects.env(objects.named(docs, "Deployment", DEPLOYMENTS[component]))
    assert str(ports["health"]) == env["TOOLHIVE_OBSERVABILITY__HEALTH_PORT"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    # The readiness check waits up to 5 s for the API server: the probe must wait longer.
    assert container["readinessProbe"]["timeoutSeconds"] > 5
    assert pod["terminationGracePeriodSeconds"] > operator.DRAIN_SECONDS

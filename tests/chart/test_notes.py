"""NOTES.txt: warnings first, then the mode installed, then how to onboard (helm install --dry-run=client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart import objects
from tests.tools import helm as helm_tool

MODE_LINES = [
    pytest.param(objects.CLUSTER, "Mode: cluster scope.", id="cluster mode is named"),
    pytest.param(objects.STATIC, "Mode: namespace scope, static list.", id="static mode is named"),
    pytest.param(objects.DISCOVERY, "Mode: namespace scope with discovery.", id="discovery mode is named"),
    pytest.param(objects.NAMESPACED, "Mode: fully namespaced.", id="fully namespaced mode is named"),
]


@pytest.mark.parametrize(("values", "line"), MODE_LINES)
def test_notes_name_the_mode_after_the_success_line(
    helm: helm_tool.Helm, chart: Path, values: dict[str, Any], line: str
) -> None:
    notes = helm.notes(chart, values=values)
    success = "toolhive-operator 0.1.0 is installed: release toolhive-operator in namespace toolhive-system."
    assert success in notes and line in notes
    assert notes.index(success) < notes.index(line)
    assert "WARNING" not in notes


def test_discovery_notes_give_the_exact_label_command(helm: helm_tool.Helm, chart: Path) -> None:
    notes = helm.notes(chart, values=objects.DISCOVERY)
    assert "  kubectl label namespace <namespace> toolhive.stacklok.dev/enabled=true\n" in notes
    assert "namespaces always: staging, production" in notes
    assert "Never served: kube-system, kube-public, kube-node-lease" in notes
    assert "kubectl get namespacediscovery toolhive-operator -o yaml" in notes


def test_label_command_uses_every_label_of_the_first_selector(helm: helm_tool.Helm, chart: Path) -> None:
    selectors = [{"matchLabels": {"tier": "prod", "team": "payments"}}, {"matchLabels": {"other": "x"}}]
    values = objects.merged(
        objects.DISCOVERY, {"operator": {"rbac": {"discovery": {"namespaceSelectors": selectors}}}}
    )
    assert "kubectl label namespace <namespace> team=payments tier=prod\n" in helm.notes(chart, values=values)


def test_expression_only_selector_gets_an_instruction_instead_of_a_command(
    helm: helm_tool.Helm, chart: Path
) -> None:
    selectors = [{"matchExpressions": [{"key": "team", "operator": "Exists"}]}]
    values = objects.merged(
        objects.DISCOVERY, {"operator": {"rbac": {"discovery": {"namespaceSelectors": selectors}}}}
    )
    notes = helm.notes(chart, values=values)
    assert "kubectl label" not in notes
    assert "matches one of operator.rbac.discovery.namespaceSelectors" in notes


def test_fully_namespaced_notes_say_what_does_not_work(helm: helm_tool.Helm, chart: Path) -> None:
    notes = helm.notes(chart, values=objects.NAMESPACED)
    assert "No cluster-scoped object was rendered" in notes
    assert "--skip-crds" in notes and "label-driven discovery" in notes


WARNINGS = [
    pytest.param(
        {"operator": {"rbac": {"scope": "namespace"}}},
        "WARNING: operator.rbac.allowedNamespaces is empty: the operator serves no namespace.",
        id="empty static list warns",
    ),
    pytest.param(
        {
            "operator": {
                "rbac": {"scope": "namespace", "discovery": {"enabled": True, "namespaceSelectors": []}}
            }
        },
        "WARNING: operator.rbac.discovery.namespaceSelectors and operator.rbac.allowedNamespaces are both",
        id="discovery that selects nothing warns",
    ),
    pytest.param(
        {"operator": {"replicaCount": 2, "leaderElection": {"enabled": False}}},
        "WARNING: operator.replicaCount is 2 with operator.leaderElection.enabled false",
        id="replicas without leader election warn",
    ),
]


@pytest.mark.parametrize(("values", "warning"), WARNINGS)
def test_warnings_come_first(helm: helm_tool.Helm, chart: Path, values: dict[str, Any], warning: str) -> None:
    notes = helm.notes(chart, values=values)
    assert warning in notes
    assert notes.index(warning) < notes.index("is installed")

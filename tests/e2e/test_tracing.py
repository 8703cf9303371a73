"""Journey 3: one trace from a namespace label to the Deployment, exported over OTLP by both processes.

The chart's telemetry values point both processes at an OTLP/HTTP receiver in this test; the test finds
discovery's decision for the labelled namespace, its grant, the operator's reconcile linked to that grant
(another process, another service) and the Deployment apply with its Kubernetes API call as a child.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.e2e.conftest import Kube, wait_for
from toolhive.testing import install, otlp, processes

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture
def receiver() -> Iterator[otlp.OtlpReceiver]:
    with otlp.OtlpReceiver() as running:
        yield running


def test_a_label_traces_through_decision_grant_and_linked_reconcile_to_the_deployment_apply(
    receiver: otlp.OtlpReceiver,
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    values = {
        "operator": {"rbac": {"scope": "namespace", "discovery": {"enabled": True}}},
        "telemetry": {"enabled": True, "endpoint": receiver.endpoint, "samplingRatio": 1},
    }
    installation = install_chart(values)
    team = make_namespace("team")
    kube.create_mcpserver(team)
    started = run_processes(
        installation, extra_env=dict.fromkeys(("toolhive-operator", "toolhive-discovery"), FAST_EXPORT)
    )
    kube.label(team, "true")
    wait_for(lambda: kube.deployment(team, "fetch"), what="labelled namespace reconciled", started=started)

    def decision_arrived() -> list[otlp.ReceivedSpan]:
        return [
            span
            for span in receiver.find_spans("discovery.decide", attributes={"k8s.namespace.name": team})
            if span.attributes.get("discovery.decision.member") is True
        ]

    decision = wait_for(decision_arrived, what="discovery.decide span", started=started)[-1]
    assert decision.service_name == "toolhive-discovery"
    assert decision.resource["k8s.namespace.name"] == installation.namespace
    assert decision.resource["k8s.pod.name"] == "toolhive-discovery-local"
    grant = next(s for s in receiver.trace(decision.trace_id) if s.name == "discovery.grant")
    assert grant.parent_span_id == decision.span_id

    def linked_reconcile() -> list[otlp.ReceivedSpan]:
        return [s for s in receiver.linked_from(grant) if s.name == "toolhive.reconcile"]

    reconcile = wait_for(linked_reconcile, what="reconcile linked to the grant", started=started)[0]
    assert reconcile.service_name == "toolhive-operator"
    assert reconcile.attributes["k8s.namespace.name"] == team

    def deployment_apply() -> list[otlp.ReceivedSpan]:
        return [
            s
            for s in receiver.trace(reconcile.trace_id)
            if s.name == "toolhive.apply Deployment" and s.parent_span_id == reconcile.span_id
        ]

    apply = wait_for(deployment_apply, what="Deployment apply span", started=started)[0]
    calls = [s for s in receiver.trace(reconcile.trace_id) if s.parent_span_id == apply.span_id]
    assert any(
        s.name.startswith("k8s.api") and s.attributes.get("k8s.resource") == "deployments" for s in calls
    )
    tree = receiver.render_tree(decision.trace_id, follow_links=True)
    assert (
        tree.index("discovery.decide")
        < tree.index("discovery.grant")
        < tree.index("toolhive.apply Deployment")
    )

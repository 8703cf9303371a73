"""Prometheus metrics: names, labels, per-instance registries, and the /metrics server."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from toolhive import metrics

DOCUMENTED = [
    "toolhive_build_info",
    "toolhive_discovery_grants_total",
    "toolhive_discovery_revokes_total",
    "toolhive_kubernetes_api_errors_total",
    "toolhive_kubernetes_api_requests_total",
    "toolhive_managed_namespaces",
    "toolhive_reconcile_duration_seconds",
    "toolhive_reconcile_queue_depth",
    "toolhive_reconcile_total",
]


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    served = metrics.Metrics(process="operator", version="9.9.9")
    served.observe_reconcile(controller="mcpserver", outcome="success", seconds=0.03)
    running = metrics.serve_metrics(served, port=0, host="127.0.0.1")
    yield running
    running.close()


def sample(collected: metrics.Metrics, name: str, **labels: str) -> float | None:
    return collected.registry.get_sample_value(name, labels)


def test_exposed_families_are_exactly_the_documented_ones() -> None:
    body, _ = metrics.Metrics(process="operator").render()
    exposed = [line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE toolhive_")]
    assert sorted(exposed) == DOCUMENTED
    assert b"_created" not in body
    for name in DOCUMENTED:
        assert name.removeprefix("toolhive_").removesuffix("_total") in (metrics.Metrics.__doc__ or "")


def test_a_reconcile_is_counted_and_timed_by_controller_and_outcome() -> None:
    collected = metrics.Metrics(process="operator")
    collected.observe_reconcile(controller="mcpserver", outcome="success", seconds=0.02)
    collected.observe_reconcile(controller="mcpserver", outcome="error", seconds=3.0)
    collected.observe_reconcile(controller="mcpserver", outcome="error", seconds=0.5)
    assert sample(collected, "toolhive_reconcile_total", controller="mcpserver", outcome="error") == 2
    assert sample(collected, "toolhive_reconcile_total", controller="mcpserver", outcome="success") == 1
    labels = {"controller": "mcpserver", "outcome": "error"}
    assert sample(collected, "toolhive_reconcile_duration_seconds_sum", **labels) == 3.5
    assert sample(collected, "toolhive_reconcile_duration_seconds_bucket", le="1.0", **labels) == 1
    assert sample(collected, "toolhive_reconcile_duration_seconds_bucket", le="+Inf", **labels) == 2


@pytest.mark.parametrize(
    ("code", "label", "is_error"),
    [
        pytest.param(200, "200", False, id="success is a request only"),
        pytest.param(404, "404", True, id="not found counts as an error"),
        pytest.param(503, "503", True, id="server error counts as an error"),
        pytest.param(None, "none", True, id="no response counts as an error labelled none"),
    ],
)
def test_api_requests_are_counted_and_failures_counted_again_by_code(
    code: int | None, label: str, is_error: bool
) -> None:
    collected = metrics.Metrics(process="operator")
    collected.observe_api_request(verb="patch", resource="deployments", code=code)
    labels = {"verb": "patch", "resource": "deployments", "code": label}
    assert sample(collected, "toolhive_kubernetes_api_requests_total", **labels) == 1
    assert sample(collected, "toolhive_kubernetes_api_errors_total", **labels) == (1 if is_error else None)


def test_gauges_and_discovery_counters_hold_what_was_set() -> None:
    collected = metrics.Metrics(process="discovery", version="1.0.0")
    collected.set_queue_depth(7, controller="namespace-discovery")
    collected.set_queue_depth(3, controller="namespace-discovery")
    collected.set_managed_namespaces(12)
    collected.count_grant()
    collected.count_grant()
    collected.count_revoke()
    assert sample(collected, "toolhive_reconcile_queue_depth", controller="namespace-discovery") == 3
    assert sample(collected, "toolhive_managed_namespaces") == 12
    assert sample(collected, "toolhive_discovery_grants_total") == 2
    assert sample(collected, "toolhive_discovery_revokes_total") == 1
    assert sample(collected, "toolhive_build_info", version="1.0.0", process="discovery") == 1


def test_each_instance_has_its_own_registry() -> None:
    operator, discovery = metrics.Metrics(process="operator"), metrics.Metrics(process="discovery")
    operator.count_grant()
    assert sample(operator, "toolhive_discovery_grants_total") == 1
    assert sample(discovery, "toolhive_discovery_grants_total") == 0


def test_process_metrics_are_exposed_too() -> None:
    body, _ = metrics.Metrics(process="operator").render()
    assert b"python_info" in body
    assert b"python_gc_objects_collected_total" in body


def test_server_answers_metrics_in_the_prometheus_text_format(server: metrics.MetricsServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        body = response.read().decode()
        content_type = response.headers["Content-Type"]
    assert content_type.startswith("text/plain")
    assert 'toolhive_reconcile_total{controller="mcpserver",outcome="success"} 1.0' in body
    assert 'toolhive_build_info{process="operator",version="9.9.9"} 1.0' in body


def test_server_negotiates_openmetrics(server: metrics.MetricsServer) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read().decode()
        content_type = response.headers["Content-Type"]
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


def test_server_answers_404_off_the_metrics_path(server: metrics.MetricsServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    assert caught.value.code == 404
    caught.value.close()


def test_closed_server_releases_its_port() -> None:
    running = metrics.serve_metrics(metrics.Metrics(process="operator"), port=0, host="127.0.0.1")
    port = running.port
    running.close()
    again = metrics.serve_metrics(metrics.Metrics(process="operator"), port=port, host="127.0.0.1")
    assert again.port == port
    again.close()

"""Spans exported over real OTLP/HTTP reach the loopback receiver decoded: tree, links, status, resource."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from toolhive import telemetry
from toolhive.testing import otlp


@pytest.fixture
def receiver() -> Iterator[otlp.OtlpReceiver]:
    with otlp.OtlpReceiver() as running:
        yield running


def emit_onboarding(tracer: trace.Tracer) -> None:
    """A discovery decision with a grant child, then a reconcile in another trace linking to the grant."""
    decision = {"k8s.namespace.name": "team-a", "reason": "selector matched"}
    with (
        telemetry.span("discovery.decide", decision, tracer=tracer),
        telemetry.span("discovery.grant", {"k8s.namespace.name": "team-a"}, tracer=tracer),
    ):
        traceparent = telemetry.current_traceparent()
    link = telemetry.link_from_traceparent(traceparent)
    assert link is not None
    with telemetry.span(
        "toolhive.reconcile", {"k8s.namespace.name": "team-a", "name": "github"}, links=[link], tracer=tracer
    ):
        with telemetry.span(
            "kubernetes.apply",
            {"http.request.method": "PATCH", "http.response.status_code": 201, "k8s.resource": "deployments"},
            kind=trace.SpanKind.CLIENT,
            tracer=tracer,
        ):
            pass
        with pytest.raises(RuntimeError), telemetry.span("toolhive.status", tracer=tracer):
            raise RuntimeError("status patch conflicted")


def test_a_linked_span_tree_exported_over_otlp_http_is_decoded(receiver: otlp.OtlpReceiver) -> None:
    config = telemetry.read_config(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=team%20a",
            "POD_NAMESPACE": "toolhive-system",
            "POD_NAME": "toolhive-operator-0",
        },
        default_service_name="toolhive-operator",
    )
    provider = telemetry.build_provider(config)
    try:
        emit_onboarding(telemetry.tracer(provider))
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    spans = receiver.wait_for(lambda spans: len(spans) == 5)
    decide = receiver.find_span("discovery.decide")
    grant = receiver.find_span("discovery.grant")
    reconcile = receiver.find_span("toolhive.reconcile")
    apply = receiver.find_span("kubernetes.apply")
    status = receiver.find_span("toolhive.status")

    assert decide.parent_span_id is None
    assert grant.parent_span_id == decide.span_id
    assert grant.trace_id == decide.trace_id
    assert reconcile.trace_id != grant.trace_id
    assert [(link.trace_id, link.span_id) for link in reconcile.links] == [(grant.trace_id, grant.span_id)]
    assert {apply.parent_span_id, status.parent_span_id} == {reconcile.span_id}

    assert decide.attributes == {"k8s.namespace.name": "team-a", "reason": "selector matched"}
    assert apply.kind == "CLIENT"
    assert apply.attributes["http.response.status_code"] == 201
    assert status.status_code == "ERROR"
    assert status.status_message == "RuntimeError: status patch conflicted"
    assert status.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in status.events] == ["exception"]
    assert apply.status_code == "UNSET"

    for span in spans:
        assert span.resource["service.name"] == "toolhive-operator"
        assert span.resource["k8s.pod.name"] == "toolhive-operator-0"
        assert span.resource["k8s.namespace.name"] == "toolhive-system"
        assert span.scope == "toolhive"
    assert all(headers["x-tenant"] == "team a" for headers in receiver.request_headers)
    assert receiver.linked_from(grant) == [reconcile]


def test_the_trace_tree_renders_with_linked_traces_nested(receiver: otlp.OtlpReceiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    try:
        emit_onboarding(telemetry.tracer(provider))
    finally:
        provider.shutdown()
    receiver.wait_for(lambda spans: len(spans) == 5)
    decide = receiver.find_span("discovery.decide")

    rendered = receiver.render_tree(decide.trace_id, attributes=["k8s.namespace.name"], follow_links=True)
    shape = [line.split(" [")[0] for line in rendered.splitlines()]
    assert shape == [
        "discovery.decide",
        "  discovery.grant",
        "    <- link",
        "      toolhive.reconcile",
        "        kubernetes.apply",
        "        toolhive.status",
    ]
    assert "k8s.namespace.name=team-a" in rendered.splitlines()[0]
    assert rendered.splitlines()[-1].endswith("ERROR RuntimeError: status patch conflicted")
    plain = receiver.render_tree(decide.trace_id)
    assert plain.splitlines()[1].startswith("  discovery.grant [")
    assert len(plain.splitlines()) == 2


def test_gzip_compressed_exports_are_accepted(receiver: otlp.OtlpReceiver) -> None:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=receiver.traces_endpoint, compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with telemetry.span("compressed", tracer=telemetry.tracer(provider)):
            pass
    finally:
        provider.shutdown()
    assert receiver.wait_for_span("compressed").parent_span_id is None
    assert receiver.request_headers[0]["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status"),
    [
        pytest.param("/v1/metrics", "application/x-protobuf", b"", 404, id="other signals are not served"),
        pytest.param("/v1/traces", "application/json", b"{}", 415, id="json bodies are refused"),
        pytest.param("/v1/traces", "application/x-protobuf", b"\xff\xff\xff", 400, id="garbage is refused"),
    ],
)
def test_requests_the_receiver_cannot_use_are_refused(
    receiver: otlp.OtlpReceiver, path: str, content_type: str, body: bytes, status: int
) -> None:
    request = urllib.request.Request(
        receiver.endpoint + path, data=body, method="POST", headers={"Content-Type": content_type}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == status
    caught.value.close()
    assert receiver.spans == []


def test_waiting_for_spans_that_never_come_times_out_naming_what_arrived(receiver: otlp.OtlpReceiver) -> None:
    with pytest.raises(TimeoutError, match=r"\[\]"):
        receiver.wait_for_span("never", timeout=0.05)
    with pytest.raises(LookupError, match="expected one span 'never'"):
        receiver.find_span("never")


def test_configure_from_the_environment_exports_and_shutdown_flushes(receiver: otlp.OtlpReceiver) -> None:
    # The real start-up path in a fresh interpreter: OTEL_* from the environment, then shutdown() at exit
    # must flush the batch processor before the process ends.
    script = textwrap.dedent(
        """
        from toolhive import telemetry
        telemetry.configure(default_service_name="toolhive-discovery")
        with telemetry.span("discovery.decide", {"k8s.namespace.name": "team-b"}):
            pass
        telemetry.shutdown()
        """
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "discovery-under-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci",
        "OTEL_TRACES_SAMPLER": "always_on",
        "POD_NAME": "toolhive-discovery-0",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    span = receiver.wait_for_span("discovery.decide", attributes={"k8s.namespace.name": "team-b"})
    assert span.resource["service.name"] == "discovery-under-test"
    assert span.resource["deployment.environment"] == "ci"
    assert span.resource["k8s.pod.name"] == "toolhive-discovery-0"


def test_sampling_zero_exports_nothing(receiver: otlp.OtlpReceiver) -> None:
    config = telemetry.read_config(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.traces_endpoint,
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0",
        },
        default_service_name="toolhive-operator",
    )
    provider = telemetry.build_provider(config)
    try:
        with telemetry.span("dropped", tracer=telemetry.tracer(provider)) as current:
            assert not current.is_recording()
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    # A marker exported afterwards through the same receiver proves the dropped span had its chance.
    marker = TracerProvider()
    marker.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    with telemetry.span("marker", tracer=telemetry.tracer(marker)):
        pass
    marker.shutdown()
    receiver.wait_for_span("marker")
    assert [span.name for span in receiver.spans] == ["marker"]

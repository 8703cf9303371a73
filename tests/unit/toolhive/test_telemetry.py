"""Tracing setup from OTEL_* variables, the span helper, and traceparent propagation."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolhive import telemetry

SERVICE = "toolhive-operator"


def config(**environ: str) -> telemetry.TracingConfig:
    return telemetry.read_config(environ, default_service_name=SERVICE, service_version="1.2.3")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[trace.Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield telemetry.tracer(provider)
    provider.shutdown()


# --- which exporters, and where to --------------------------------------------------------------


def test_no_endpoint_and_no_exporter_means_tracing_is_off() -> None:
    result = config()
    assert not result.enabled
    assert result.reason == "off: no OTLP endpoint set"


def test_sdk_disabled_wins_over_an_endpoint() -> None:
    result = config(OTEL_SDK_DISABLED="TRUE", OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318")
    assert not result.enabled
    assert "OTEL_SDK_DISABLED" in result.reason


def test_the_generic_endpoint_gets_the_traces_path_appended() -> None:
    result = config(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/")
    assert result.exporters == ("otlp",)
    assert result.endpoint == "http://collector:4318/v1/traces"


def test_the_traces_endpoint_is_used_as_given_and_wins_over_the_generic_one() -> None:
    result = config(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://generic:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://traces.example:443/custom",
    )
    assert result.endpoint == "https://traces.example:443/custom"


def test_explicit_otlp_exporter_without_endpoint_uses_the_specification_default() -> None:
    assert config(OTEL_TRACES_EXPORTER="otlp").endpoint == "http://localhost:4318/v1/traces"


def test_console_exporter_alone_needs_no_endpoint() -> None:
    result = config(OTEL_TRACES_EXPORTER="console")
    assert result.exporters == ("console",)
    assert result.endpoint is None
    assert result.reason.startswith("on: console;")


def test_console_and_otlp_can_run_together() -> None:
    result = config(OTEL_TRACES_EXPORTER="console, otlp", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318")
    assert result.exporters == ("console", "otlp")


def test_exporter_none_turns_tracing_off_even_with_an_endpoint() -> None:
    result = config(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318")
    assert not result.enabled
    assert "none" in result.reason


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            id="grpc protocol is refused naming the variable",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
            },
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            id="http/json is refused naming the traces variable",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            id="an endpoint without scheme is refused",
        ),
        pytest.param({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", id="unknown exporter"),
        pytest.param({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", id="unknown sampler"),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
            "OTEL_TRACES_SAMPLER_ARG",
            id="sampler argument that is not a number",
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG",
            id="sampler argument above one",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign"},
            "OTEL_EXPORTER_OTLP_HEADERS",
            id="headers that are not key=value pairs",
        ),
        pytest.param(
            {"OTEL_RESOURCE_ATTRIBUTES": "=x"}, "OTEL_RESOURCE_ATTRIBUTES", id="attribute without key"
        ),
    ],
)
def test_unusable_values_fail_with_the_variable_named(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(telemetry.TelemetryConfigError) as caught:
        telemetry.read_config(environ, default_service_name=SERVICE)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_the_traces_protocol_variable_wins_over_the_generic_one() -> None:
    result = config(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
    )
    assert result.enabled


def test_headers_are_percent_decoded_and_traces_headers_win() -> None:
    result = config(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318",
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Basic%20abc,x-tenant=a",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-tenant=b",
    )
    assert result.headers == {"authorization": "Basic abc", "x-tenant": "b"}


@pytest.mark.parametrize(
    ("environ", "description"),
    [
        pytest.param({}, "ParentBased{root:AlwaysOnSampler,", id="default is parent based always on"),
        pytest.param({"OTEL_TRACES_SAMPLER": "always_off"}, "AlwaysOffSampler", id="always off"),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "ALWAYS_ON"}, "AlwaysOnSampler", id="names are case-insensitive"
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            "TraceIdRatioBased{0.25}",
            id="trace id ratio takes its argument",
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
            "ParentBased{root:TraceIdRatioBased{1.0},",
            id="ratio without argument samples everything",
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
            "ParentBased{root:AlwaysOffSampler,",
            id="parent based always off",
        ),
    ],
)
def test_sampler_follows_the_standard_variables(environ: dict[str, str], description: str) -> None:
    sampler = telemetry.read_config(environ, default_service_name=SERVICE).sampler
    assert sampler.get_description().startswith(description)


# --- resource ---------------------------------------------------------------------------------------


def test_resource_carries_service_and_pod_identity_from_the_downward_api() -> None:
    result = config(POD_NAMESPACE="toolhive-system", POD_NAME="toolhive-operator-7d9f-x2")
    assert result.resource_attributes == {
        "service.name": SERVICE,
        "service.version": "1.2.3",
        "k8s.namespace.name": "toolhive-system",
        "k8s.pod.name": "toolhive-operator-7d9f-x2",
    }


def test_resource_attributes_variable_overrides_and_service_name_variable_wins_last() -> None:
    result = config(
        POD_NAMESPACE="from-pod",
        OTEL_RESOURCE_ATTRIBUTES="k8s.namespace.name=explicit,service.name=ignored,deployment.environment=dev%20a",
        OTEL_SERVICE_NAME="my-operator",
    )
    assert result.resource_attributes["k8s.namespace.name"] == "explicit"
    assert result.resource_attributes["service.name"] == "my-operator"
    assert result.resource_attributes["deployment.environment"] == "dev a"


def test_built_provider_has_the_resource_and_sampler() -> None:
    provider = telemetry.build_provider(
        config(OTEL_TRACES_EXPORTER="console", OTEL_TRACES_SAMPLER="always_off", POD_NAME="p-1")
    )
    try:
        assert provider.resource.attributes["k8s.pod.name"] == "p-1"
        assert provider.resource.attributes["service.name"] == SERVICE
        assert provider.resource.attributes["telemetry.sdk.language"] == "python"
        assert provider.sampler is sampling.ALWAYS_OFF
    finally:
        provider.shutdown()


def test_console_exporter_writes_one_line_per_span_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    provider = telemetry.build_provider(config(OTEL_TRACES_EXPORTER="console"))
    try:
        with telemetry.span("demo.step", {"k8s.namespace.name": "team-a"}, tracer=telemetry.tracer(provider)):
            pass
    finally:
        provider.shutdown()
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("span demo.step trace=")
    assert "k8s.namespace.name='team-a'" in line


# --- configure() without an exporter ---------------------------------------------------------------


def test_configure_without_exporter_installs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="toolhive.telemetry")
    assert telemetry.configure(default_service_name=SERVICE, environ={}) is None
    assert not telemetry.is_enabled()
    assert isinstance(telemetry.tracer(), trace.NoOpTracer)
    assert "tracing off: no OTLP endpoint set" in caplog.text
    telemetry.shutdown()  # nothing to flush: must not fail


def test_configure_with_console_exporter_installs_the_global_provider_and_shutdown_flushes() -> None:
    # A subprocess: the global provider can be set once per interpreter, and the test run keeps its own.
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from toolhive import telemetry
        environ = {"OTEL_TRACES_EXPORTER": "console"}
        provider = telemetry.configure(default_service_name="svc", environ=environ)
        assert telemetry.is_enabled()
        assert trace.get_tracer_provider() is provider
        with telemetry.span("outer"):
            with trace.get_tracer("discovery").start_as_current_span("from-the-api-only"):
                pass
        telemetry.shutdown()
        assert not telemetry.is_enabled()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("span ")]
    assert names == ["from-the-api-only", "outer"]


# --- the span helper ------------------------------------------------------------------------------


def test_span_without_tracer_while_off_is_a_no_op_that_leaves_the_context_alone() -> None:
    before = trace.get_current_span()
    with telemetry.span("anything", {"k": "v"}) as current:
        assert current is trace.INVALID_SPAN
        assert not current.is_recording()
        assert trace.get_current_span() is before
    assert telemetry.current_traceparent() is None


def test_span_nests_and_drops_none_attributes(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    with (
        telemetry.span("parent", {"k8s.namespace.name": "team-a", "missing": None}, tracer=tracer),
        telemetry.span("child", tracer=tracer, kind=trace.SpanKind.CLIENT),
    ):
        pass
    child, parent = exporter.get_finished_spans()
    assert (child.name, parent.name) == ("child", "parent")
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.kind is trace.SpanKind.CLIENT
    assert dict(parent.attributes or {}) == {"k8s.namespace.name": "team-a"}


def test_an_escaping_exception_is_recorded_and_sets_error_status(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(KeyError), telemetry.span("failing", tracer=tracer):
        raise KeyError("spec.image")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "KeyError: 'spec.image'"
    assert (span.attributes or {})["error.type"] == "KeyError"
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "KeyError"


def test_error_type_is_fully_qualified_for_non_builtin_errors(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with telemetry.span("handled", tracer=tracer) as current:
        telemetry.mark_error(current, telemetry.TelemetryConfigError("X", "bad"), description="gave up")
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})["error.type"] == "toolhive.telemetry.TelemetryConfigError"
    assert span.status.description == "gave up"


def test_mark_error_on_a_non_recording_span_does_nothing() -> None:
    telemetry.mark_error(trace.INVALID_SPAN, RuntimeError("ignored"))


def test_span_with_links_records_them(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    with telemetry.span("cause", tracer=tracer):
        traceparent = telemetry.current_traceparent()
    link = telemetry.link_from_traceparent(traceparent, {"cause": "grant"})
    assert link is not None
    with telemetry.span("effect", tracer=tracer, links=[link]):
        pass
    cause, effect = exporter.get_finished_spans()
    assert effect.context.trace_id != cause.context.trace_id
    [recorded] = effect.links
    assert (recorded.context.trace_id, recorded.context.span_id) == (
        cause.context.trace_id,
        cause.context.span_id,
    )
    assert dict(recorded.attributes or {}) == {"cause": "grant"}


# --- traceparent ------------------------------------------------------------------------------------


def test_current_traceparent_is_the_w3c_form_of_the_current_span(tracer: trace.Tracer) -> None:
    with telemetry.span("s", tracer=tracer) as current:
        value = telemetry.current_traceparent()
        context = current.get_span_context()
    assert value is not None
    assert value[:-2] == f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    assert int(value[-2:], 16) & 0x01, "sampled flag"


def test_unsampled_span_still_yields_a_traceparent_with_sampled_flag_off() -> None:
    provider = TracerProvider(sampler=sampling.ALWAYS_OFF)
    with telemetry.span("s", tracer=telemetry.tracer(provider)):
        value = telemetry.current_traceparent()
    assert value is not None
    assert not int(value[-2:], 16) & 0x01, "sampled flag"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("not-a-traceparent", id="garbage"),
        pytest.param("00-00000000000000000000000000000000-0000000000000000-01", id="all-zero ids"),
        pytest.param("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033", id="truncated"),
    ],
)
def test_malformed_traceparents_give_no_link_and_no_context(value: str | None) -> None:
    assert telemetry.link_from_traceparent(value) is None
    assert telemetry.context_from_traceparent(value) is None


def test_a_traceparent_with_surrounding_whitespace_is_accepted() -> None:
    link = telemetry.link_from_traceparent(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n")
    assert link is not None
    assert link.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert link.context.span_id == 0xB7AD6B7169203331
    assert link.context.is_remote


def test_context_from_traceparent_continues_the_remote_trace(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    parent = telemetry.context_from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert parent is not None
    with tracer.start_as_current_span("continued", context=parent):
        pass
    [span] = exporter.get_finished_spans()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331


def test_spans_nest_across_awaits_and_tasks(tracer: trace.Tracer, exporter: InMemorySpanExporter) -> None:
    async def child(name: str) -> None:
        await asyncio.sleep(0)
        with telemetry.span(name, tracer=tracer):
            await asyncio.sleep(0)

    async def reconcile() -> None:
        with telemetry.span("toolhive.reconcile", tracer=tracer):
            await asyncio.gather(child("apply.deployment"), child("apply.service"))
            await child("status")
        assert not trace.get_current_span().get_span_context().is_valid

    asyncio.run(reconcile())
    spans = {span.name: span for span in exporter.get_finished_spans()}
    parent = spans.pop("toolhive.reconcile")
    assert sorted(spans) == ["apply.deployment", "apply.service", "status"]
    for span in spans.values():
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id


def test_the_context_is_restored_after_an_exception(tracer: trace.Tracer) -> None:
    with telemetry.span("outer", tracer=tracer) as outer:
        with pytest.raises(ValueError), telemetry.span("inner", tracer=tracer):
            raise ValueError("x")
        assert trace.get_current_span() is outer
    assert not trace.get_current_span().get_span_context().is_valid

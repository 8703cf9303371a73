"""kube.dumps/kube.loads: orjson where it writes what `json` would, `json` where it does not."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

from discovery import kube


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"metadata": {"name": "a", "labels": {"k": "v"}}, "n": [1, True, None]}, id="plain"),
        pytest.param({"message": "café \u2028 日本"}, id="non-ASCII is escaped as json does"),
        pytest.param({"big": 2**70}, id="an integer beyond 64 bits"),
        pytest.param({1: "one"}, id="a non-string key"),
    ],
)
def test_dumps_writes_what_json_reads_back_as_the_same_value(value: object) -> None:
    data = kube.dumps(value)
    assert data.isascii()
    assert json.loads(data) == json.loads(json.dumps(value))


def test_loads_reads_what_orjson_refuses_through_json() -> None:
    assert kube.loads(b'{"a": [1, "x"]}') == {"a": [1, "x"]}
    assert math.isnan(kube.loads(b'{"a": NaN}')["a"])
    assert kube.loads('{"a": "ü"}'.encode("utf-16")) == {"a": "ü"}


def test_without_a_tracer_provider_spans_are_skipped_and_with_one_they_are_recorded() -> None:
    # A process of its own: the global provider can be set only once, and the unit tests set it.
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from discovery import kube
        from toolhive import telemetry

        tracer = telemetry.GlobalTracer("test")
        assert not kube.tracer_provider_installed()
        with tracer.start_as_current_span("off") as span:
            assert span is trace.INVALID_SPAN
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert kube.tracer_provider_installed()
        with tracer.start_as_current_span("on", attributes={"a": 1}) as span:
            assert trace.get_current_span() is span
        print([(s.name, dict(s.attributes or {})) for s in exporter.get_finished_spans()])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('on', {'a': 1})]"

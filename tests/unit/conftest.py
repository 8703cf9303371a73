"""Unit-test fixtures shared across packages: the in-memory span exporter behind the global tracer provider.

Modules such as `toolhive/reconcile.py` and `discovery/kube.py` open spans on module-level ProxyTracers,
which follow OpenTelemetry's *global* provider; the API lets that be set once per process. So one session
fixture installs one SDK provider (or, when something earlier installed one, joins it) with an in-memory
exporter, and `spans` hands each test that exporter emptied. Tests that build their own provider and pass
its tracer explicitly (`test_telemetry.py`, `test_controller.py`) are untouched by it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="session")
def global_span_exporter() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter receiving every span the global tracer provider records, for the session."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        # Someone in this process already installed the global provider: listen to it instead.
        provider.add_span_processor(processor)
    else:
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            pytest.fail("could not install the global tracer provider for span tests")
    yield exporter
    exporter.clear()


@pytest.fixture
def spans(global_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The session's in-memory exporter, emptied before and after this test."""
    global_span_exporter.clear()
    yield global_span_exporter
    global_span_exporter.clear()

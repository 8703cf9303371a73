"""Tracing for both processes: provider setup from the standard `OTEL_*` variables, and the span helpers.

The CLI calls `configure()` once at start and `shutdown()` at exit; the rest of the code opens spans with
`span(name, attributes)` and carries trace context across processes as W3C `traceparent` strings. With no
exporter configured no SDK provider exists and `span()` returns at once, so tracing costs almost nothing
(`benchmarks/bench_tracing_overhead.py` measures it). Never reads Settings; never imported by pure layers.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk import resources
from opentelemetry.sdk import version as sdk_version
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation import tracecontext
from opentelemetry.util import types as otel_types

import toolhive
from discovery import kube

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME: Final = "toolhive"

# OpenTelemetry semantic-convention attribute names used across the code (spelled once, here).
K8S_NAMESPACE_NAME: Final = "k8s.namespace.name"
K8S_POD_NAME: Final = "k8s.pod.name"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"

EXPORTER_OTLP: Final = "otlp"
EXPORTER_CONSOLE: Final = "console"
PROTOCOL_HTTP_PROTOBUF: Final = "http/protobuf"
DEFAULT_OTLP_TRACES_ENDPOINT: Final = "http://localhost:4318/v1/traces"

_PROPAGATOR: Final = tracecontext.TraceContextTextMapPropagator()
_TRUE: Final = frozenset({"true", "1", "yes", "on"})


class TelemetryConfigError(ValueError):
    """An `OTEL_*` variable holds a value we cannot use; `variable` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


@dataclasses.dataclass(frozen=True)
class TracingConfig:
    """What `read_config` decided from the environment. `exporters` empty means tracing is off."""

    exporters: tuple[str, ...]
    endpoint: str | None
    headers: Mapping[str, str]
    sampler: sampling.Sampler
    resource_attributes: Mapping[str, str]
    reason: str
    """One line for the start-up log: why tracing is on or off, and where spans go."""

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)


@dataclasses.dataclass
class _State:
    providers: list[TracerProvider] = dataclasses.field(default_factory=list)
    """Every provider configure() built, oldest (the global one) first; shutdown() flushes them all."""
    tracer: trace.Tracer | None = None
    global_installed: bool = False
    atexit_registered: bool = False


_state = _State()


def read_config(
    environ: Mapping[str, str], *, default_service_name: str, service_version: str = toolhive.__version__
) -> TracingConfig:
    """Interpret the standard OpenTelemetry variables (and the Downward API's POD_NAMESPACE/POD_NAME).

    Tracing is on when OTEL_TRACES_EXPORTER names an exporter, or (unset) when an OTLP endpoint is set.
    Raises TelemetryConfigError naming the variable for values we cannot honour (grpc, bad sampler).
    """
    resource_attributes = _resource_attributes(
        environ, default_service_name=default_service_name, service_version=service_version
    )
    sampler = _sampler(environ)
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return TracingConfig((), None, {}, sampler, resource_attributes, "off: OTEL_SDK_DISABLED is true")

    endpoint = _endpoint(environ)
    exporters = _exporters(environ, endpoint_given=endpoint is not None)
    if not exporters:
        why = "OTEL_TRACES_EXPORTER is none" if "OTEL_TRACES_EXPORTER" in environ else "no OTLP endpoint set"
        return TracingConfig((), None, {}, sampler, resource_attributes, f"off: {why}")

    headers: Mapping[str, str] = {}
    if EXPORTER_OTLP in exporters:
        _check_protocol(environ)
        endpoint = endpoint or DEFAULT_OTLP_TRACES_ENDPOINT
        headers = _headers(environ)
    else:
        endpoint = None
    where = ", ".join(
        f"otlp {PROTOCOL_HTTP_PROTOBUF} to {endpoint}" if e == EXPORTER_OTLP else e for e in exporters
    )
    reason = f"on: {where}; sampler {sampler.get_description()}"
    return TracingConfig(exporters, endpoint, headers, sampler, resource_attributes, reason)


def build_provider(config: TracingConfig) -> TracerProvider:
    """An SDK provider with the configured sampler, resource and exporters. Does not install it globally.

    OTLP spans go through a BatchSpanProcessor (tuned by the SDK's own OTEL_BSP_* variables); console spans
    are written at once, one line each, to stderr. Timeout, compression and certificates of the OTLP
    exporter come from the SDK's own OTEL_EXPORTER_OTLP_* variables.
    """
    attributes: dict[str, str] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version.__version__,
        **config.resource_attributes,
    }
    provider = TracerProvider(
        sampler=config.sampler, resource=resources.Resource(attributes), shutdown_on_exit=False
    )
    for name in config.exporters:
        if name == EXPORTER_OTLP:
            otlp = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers))
            provider.add_span_processor(BatchSpanProcessor(otlp))
        else:
            console = ConsoleSpanExporter(out=sys.stderr, formatter=format_span_line)
            provider.add_span_processor(SimpleSpanProcessor(console))
    return provider


def configure(
    *,
    default_service_name: str,
    service_version: str = toolhive.__version__,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Set tracing up for this process from the environment; returns the provider, or None when off.

    When on, the provider becomes OpenTelemetry's global one (so `discovery`, which uses only the API,
    records too) and `span()`/`tracer()` use it; `shutdown()` runs at interpreter exit. The API allows
    one global provider per process: a second call (a demo running both processes in one interpreter)
    switches only what `span()`/`tracer()` use. Raises TelemetryConfigError for unusable `OTEL_*` values.
    """
    config = read_config(
        os.environ if environ is None else environ,
        default_service_name=default_service_name,
        service_version=service_version,
    )
    logger.info("tracing %s", config.reason)
    if not config.enabled:
        return None
    provider = build_provider(config)
    _state.providers.append(provider)
    _state.tracer = tracer(provider)
    if not _state.global_installed:
        trace.set_tracer_provider(provider)
        _state.global_installed = True
    if not _state.atexit_registered:
        atexit.register(shutdown)
        _state.atexit_registered = True
    return provider


def shutdown(*, timeout_millis: int = 5000) -> None:
    """Flush pending spans and stop the exporters of the providers `configure()` built (if any).

    Afterwards `span()` is back on the no-op fast path; safe to call twice.
    """
    providers, _state.providers = _state.providers, []
    _state.tracer = None
    for provider in providers:
        provider.force_flush(timeout_millis)
        provider.shutdown()


def is_enabled() -> bool:
    """True when `configure()` installed a provider, i.e. `span()` without a tracer records."""
    return _state.tracer is not None


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """Our tracer from `provider`, else the configured one, else a no-op tracer.

    Tests pass a provider holding an in-memory exporter; components keep the result in their context.
    """
    if provider is not None:
        return provider.get_tracer(INSTRUMENTATION_NAME, toolhive.__version__)
    return _state.tracer or trace.NoOpTracer()


class GlobalTracer:
    """A module-level tracer on OpenTelemetry's *global* provider that costs nothing while none is set.

    `trace.get_tracer(name)` gives a ProxyTracer whose spans, before a provider is installed, are no-op
    spans that still attach and detach a context (~1.5 us each, ~25 per reconcile pass). This one hands
    out `kube.NO_SPAN` instead until a real provider is installed, then the proxy's spans, so tests and
    benchmarks that install the global provider late still get every span.
    """

    __slots__ = ("_proxy",)

    def __init__(self, name: str) -> None:
        self._proxy = trace.get_tracer(name)

    def start_as_current_span(
        self,
        name: str,
        *,
        attributes: otel_types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    ) -> contextlib.AbstractContextManager[trace.Span]:
        if not kube.tracer_provider_installed():
            return kube.NO_SPAN
        return self._proxy.start_as_current_span(name, kind=kind, attributes=attributes, links=links)


def span(
    name: str,
    attributes: Mapping[str, otel_types.AttributeValue | None] | None = None,
    *,
    links: Sequence[trace.Link] = (),
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    tracer: trace.Tracer | None = None,
) -> contextlib.AbstractContextManager[trace.Span]:
    """A context manager opening `name` as the current span with `attributes` (None values dropped).

    An exception escaping the block is recorded on the span, sets status ERROR and `error.type`, and
    propagates. Without `tracer` and with tracing off, it yields a non-recording span without touching
    the context at all: the fast path the overhead benchmark measures. Works across `await` as well.
    """
    active = tracer if tracer is not None else _state.tracer
    if active is None:
        return kube.NO_SPAN
    return _SpanScope(active, name, attributes, links, kind)


class _SpanScope:
    """`tracer.start_as_current_span` by hand: a class, not three stacked generators, is 2-3x cheaper."""

    __slots__ = ("_attributes", "_kind", "_links", "_name", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Mapping[str, otel_types.AttributeValue | None] | None,
        links: Sequence[trace.Link],
        kind: trace.SpanKind,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._links = links
        self._kind = kind

    def __enter__(self) -> trace.Span:
        attributes = self._attributes
        if attributes and None in attributes.values():
            attributes = {key: value for key, value in attributes.items() if value is not None}
        self._span = self._tracer.start_span(
            self._name,
            kind=self._kind,
            attributes=attributes,
            links=self._links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if error is not None and not isinstance(error, GeneratorExit):
                mark_error(self._span, error)
        finally:
            otel_context.detach(self._token)
            self._span.end()


def mark_error(span: trace.Span, error: BaseException, *, description: str | None = None) -> None:
    """Record `error` on `span` and set status ERROR and `error.type` (for errors handled, not raised)."""
    if not span.is_recording():
        return
    kind = type(error)
    error_type = (
        kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )
    span.set_attribute(ERROR_TYPE, error_type)
    if isinstance(error, Exception):
        span.record_exception(error)
    span.set_status(trace.Status(trace.StatusCode.ERROR, description or f"{kind.__name__}: {error}"))


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (for annotations), or None outside any valid span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def link_from_traceparent(
    value: str | None, attributes: Mapping[str, otel_types.AttributeValue] | None = None
) -> trace.Link | None:
    """A span link to the span a `traceparent` string names; None when absent or malformed.

    Malformed values come from annotations anyone can edit, so they never fail a reconcile.
    """
    if not value:
        return None
    remote = trace.get_current_span(_PROPAGATOR.extract({"traceparent": value.strip()})).get_span_context()
    if not remote.is_valid:
        logger.debug("ignoring malformed traceparent %r", value)
        return None
    return trace.Link(remote, attributes=dict(attributes) if attributes else None)


def context_from_traceparent(value: str | None) -> otel_context.Context | None:
    """A context whose parent is the span a `traceparent` names (to continue a remote trace), or None."""
    if not value:
        return None
    extracted = _PROPAGATOR.extract({"traceparent": value.strip()})
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


def format_span_line(span: ReadableSpan) -> str:
    """One line per finished span, for the console exporter: name, ids, duration, status, attributes."""
    ctx = span.get_span_context()
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "-"
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    trace_id = f"{ctx.trace_id:032x}" if ctx is not None else "-"
    span_id = f"{ctx.span_id:016x}" if ctx is not None else "-"
    parts = [f"span {span.name}", f"trace={trace_id}", f"span={span_id}", f"parent={parent}"]
    parts.append(f"duration={duration_ms:.3f}ms")
    if span.status.status_code is not trace.StatusCode.UNSET:
        parts.append(f"status={span.status.status_code.name}")
    parts.extend(f"{key}={value!r}" for key, value in sorted((span.attributes or {}).items()))
    parts.extend(f"link={link.context.trace_id:032x}/{link.context.span_id:016x}" for link in span.links)
    return " ".join(parts) + "\n"


def _resource_attributes(
    environ: Mapping[str, str], *, default_service_name: str, service_version: str
) -> dict[str, str]:
    # Precedence, lowest first: our defaults and the Downward API, then OTEL_RESOURCE_ATTRIBUTES,
    # then OTEL_SERVICE_NAME (the order the specification gives the last two).
    attributes = {SERVICE_NAME: default_service_name, SERVICE_VERSION: service_version}
    if environ.get("POD_NAMESPACE"):
        attributes[K8S_NAMESPACE_NAME] = environ["POD_NAMESPACE"]
    if environ.get("POD_NAME"):
        attributes[K8S_POD_NAME] = environ["POD_NAME"]
    attributes.update(_key_values(environ, "OTEL_RESOURCE_ATTRIBUTES"))
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        attributes[SERVICE_NAME] = environ["OTEL_SERVICE_NAME"].strip()
    return attributes


def _key_values(environ: Mapping[str, str], variable: str) -> dict[str, str]:
    """Parse the `key1=value1,key2=value2` form (values percent-encoded) shared by several OTEL_* vars."""
    result: dict[str, str] = {}
    for item in environ.get(variable, "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TelemetryConfigError(
                variable, f"expected key=value pairs separated by commas, got {item!r}"
            )
        result[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return result


def _sampler(environ: Mapping[str, str]) -> sampling.Sampler:
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name in ("always_on", "parentbased_always_on", "always_off", "parentbased_always_off"):
        root: sampling.Sampler = sampling.ALWAYS_OFF if name.endswith("always_off") else sampling.ALWAYS_ON
        return sampling.ParentBased(root) if name.startswith("parentbased_") else root
    if name in ("traceidratio", "parentbased_traceidratio"):
        ratio = _ratio(environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip())
        if name == "traceidratio":
            return sampling.TraceIdRatioBased(ratio)
        return sampling.ParentBasedTraceIdRatio(ratio)
    raise TelemetryConfigError(
        "OTEL_TRACES_SAMPLER",
        f"unknown sampler {name!r}; use always_on, always_off, traceidratio or their parentbased_ forms",
    )


def _ratio(raw: str) -> float:
    if not raw:
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        raise TelemetryConfigError(
            "OTEL_TRACES_SAMPLER_ARG", f"expected a number in [0, 1], got {raw!r}"
        ) from None
    if not 0.0 <= ratio <= 1.0:
        raise TelemetryConfigError("OTEL_TRACES_SAMPLER_ARG", f"expected a number in [0, 1], got {raw!r}")
    return ratio


def _endpoint(environ: Mapping[str, str]) -> str | None:
    specific = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    generic = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if specific:
        variable, endpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", specific
    elif generic:
        # The generic endpoint is a base URL; the spec appends the signal path to it.
        variable, endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", generic.rstrip("/") + "/v1/traces"
    else:
        return None
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TelemetryConfigError(variable, f"expected an http:// or https:// URL, got {endpoint!r}")
    return endpoint


def _exporters(environ: Mapping[str, str], *, endpoint_given: bool) -> tuple[str, ...]:
    raw = environ.get("OTEL_TRACES_EXPORTER")
    if raw is None or not raw.strip():
        # Unlike the SDK's default (otlp to localhost), no endpoint means off: nothing to send to.
        return (EXPORTER_OTLP,) if endpoint_given else ()
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in (EXPORTER_OTLP, EXPORTER_CONSOLE, "none")]
    if unknown:
        raise TelemetryConfigError(
            "OTEL_TRACES_EXPORTER", f"unsupported exporter {unknown[0]!r}; use otlp, console or none"
        )
    return () if "none" in names else names


def _check_protocol(environ: Mapping[str, str]) -> None:
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip().lower()
        if not protocol:
            continue
        if protocol != PROTOCOL_HTTP_PROTOBUF:
            raise TelemetryConfigError(
                variable,
                f"protocol {protocol!r} is not supported: this build ships only the OTLP/HTTP exporter; "
                f"set {PROTOCOL_HTTP_PROTOBUF} and point the endpoint at the collector's HTTP port (4318)",
            )
        return


def _headers(environ: Mapping[str, str]) -> dict[str, str]:
    headers = _key_values(environ, "OTEL_EXPORTER_OTLP_HEADERS")
    headers.update(_key_values(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
    return headers

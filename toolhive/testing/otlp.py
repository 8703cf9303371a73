"""A loopback OTLP/HTTP trace receiver for tests and the demo: a collector small enough to read.

`OtlpReceiver()` listens on 127.0.0.1 (a free port) in its own thread, accepts POST /v1/traces with
protobuf bodies (optionally gzip/deflate encoded), decodes them with the OpenTelemetry proto package and
keeps every span. Tests find spans by name and attributes and wait for them with a deadline; the demo
prints `render_tree()` of an onboarding. Never forwards spans anywhere and never listens beyond loopback.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

from google.protobuf import message as protobuf_message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES_PATH: Final = "/v1/traces"
_KINDS: Final = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS: Final = {0: "UNSET", 1: "OK", 2: "ERROR"}

# How often the server thread checks for close(); bounds how long close() waits.
_POLL_SECONDS: Final = 0.05


@dataclasses.dataclass(frozen=True)
class ReceivedLink:
    trace_id: str
    span_id: str
    attributes: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ReceivedEvent:
    name: str
    time_unix_nano: int
    attributes: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One decoded span; ids are lower-case hex, `parent_span_id` None for a root."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_unix_nano: int
    end_unix_nano: int
    attributes: Mapping[str, Any]
    links: tuple[ReceivedLink, ...]
    events: tuple[ReceivedEvent, ...]
    status_code: str
    status_message: str
    resource: Mapping[str, Any]
    scope: str

    @property
    def duration_ms(self) -> float:
        return (self.end_unix_nano - self.start_unix_nano) / 1e6

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) else None


class OtlpReceiver:
    """Loopback OTLP/HTTP receiver. Use as a context manager, or call `close()`.

    `endpoint` is the base URL for OTEL_EXPORTER_OTLP_ENDPOINT; `traces_endpoint` the full one for
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or the exporter's `endpoint=`).
    """

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()
        self.request_headers: list[dict[str, str]] = []
        """HTTP headers of each export request accepted so far (to check OTEL_EXPORTER_OTLP_HEADERS)."""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_SECONDS,), name="otlp-receiver", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def traces_endpoint(self) -> str:
        return self.endpoint + TRACES_PATH

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A snapshot of every span received so far, in arrival order."""
        with self._changed:
            return list(self._spans)

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()

    def accept(
        self, request: trace_service_pb2.ExportTraceServiceRequest, *, headers: Mapping[str, str]
    ) -> int:
        """Store the spans of one decoded export request; returns how many it held."""
        decoded = list(decode_request(request))
        with self._changed:
            self._spans.extend(decoded)
            self.request_headers.append({key.lower(): value for key, value in headers.items()})
            self._changed.notify_all()
        return len(decoded)

    def find_spans(
        self,
        name: str | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> list[ReceivedSpan]:
        """Spans with this name (if given), whose attributes include `attributes`, in this trace."""
        return [span for span in self.spans if _matches(span, name, attributes, trace_id)]

    def find_span(self, name: str, *, attributes: Mapping[str, Any] | None = None) -> ReceivedSpan:
        """The one span matching; raises LookupError naming what was looked for when not exactly one."""
        found = self.find_spans(name, attributes=attributes)
        if len(found) != 1:
            names = sorted({span.name for span in self.spans})
            raise LookupError(
                f"expected one span {name!r} with {dict(attributes or {})}, found {len(found)}; "
                f"span names received: {names}"
            )
        return found[0]

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], *, timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until `predicate(spans)` holds (re-checked on every export); TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._spans)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = sorted({span.name for span in self._spans})
                    raise TimeoutError(f"spans received in {timeout}s did not satisfy the wait: {names}")
                self._changed.wait(remaining)
            return list(self._spans)

    def wait_for_span(
        self, name: str, *, attributes: Mapping[str, Any] | None = None, timeout: float = 10.0
    ) -> ReceivedSpan:
        """The first span matching, waiting for it up to `timeout` seconds."""

        def arrived(spans: list[ReceivedSpan]) -> bool:
            return any(_matches(span, name, attributes, None) for span in spans)

        spans = self.wait_for(arrived, timeout=timeout)
        return next(span for span in spans if _matches(span, name, attributes, None))

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """Every span of one trace, by start time."""
        return sorted(self.find_spans(trace_id=trace_id), key=lambda span: span.start_unix_nano)

    def linked_from(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        """Spans (in any trace) that carry a link to `span`, by start time."""
        target = (span.trace_id, span.span_id)
        linking = [
            other for other in self.spans if target in {(link.trace_id, link.span_id) for link in other.links}
        ]
        return sorted(linking, key=lambda other: other.start_unix_nano)

    def render_tree(
        self, trace_id: str, *, attributes: Iterable[str] = (), follow_links: bool = False
    ) -> str:
        """The trace as indented text: one span a line with duration, chosen attributes and status.

        With `follow_links`, under each span come the traces whose spans link to it (marked `<- link`),
        so a discovery decision shows the reconciles it caused. Spans whose parent never arrived are
        shown as roots.
        """
        shown = tuple(attributes)
        lines: list[str] = []
        self._render_trace(trace_id, shown, follow_links, depth=0, seen={trace_id}, lines=lines)
        return "\n".join(lines)

    def _render_trace(
        self,
        trace_id: str,
        shown: tuple[str, ...],
        follow_links: bool,
        *,
        depth: int,
        seen: set[str],
        lines: list[str],
        only_from: ReceivedSpan | None = None,
    ) -> None:
        spans = self.trace(trace_id)
        ids = {span.span_id for span in spans}
        children: dict[str | None, list[ReceivedSpan]] = {}
        for span in spans:
            parent = span.parent_span_id if span.parent_span_id in ids else None
            children.setdefault(parent, []).append(span)

        def walk(span: ReceivedSpan, level: int) -> None:
            lines.append("  " * level + _describe(span, shown))
            if follow_links:
                for linked in self.linked_from(span):
                    if linked.trace_id in seen:
                        continue
                    seen.add(linked.trace_id)
                    lines.append("  " * (level + 1) + "<- link")
                    self._render_trace(
                        linked.trace_id,
                        shown,
                        follow_links,
                        depth=level + 2,
                        seen=seen,
                        lines=lines,
                        only_from=linked,
                    )
            for child in children.get(span.span_id, []):
                walk(child, level + 1)

        roots = children.get(None, [])
        if only_from is not None:
            # A linked trace is shown from its root that leads to the linking span.
            roots = [root for root in roots if _is_ancestor(root, only_from, spans)] or roots
        for root in roots:
            walk(root, depth)


def decode_request(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterable[ReceivedSpan]:
    """Flatten an OTLP export request into ReceivedSpans (resource and scope copied onto each)."""
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                yield _decode_span(span, resource=resource, scope=scope)


def _decode_span(span: trace_pb2.Span, *, resource: Mapping[str, Any], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        kind=_KINDS.get(span.kind, str(span.kind)),
        start_unix_nano=span.start_time_unix_nano,
        end_unix_nano=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        links=tuple(
            ReceivedLink(link.trace_id.hex(), link.span_id.hex(), _attributes(link.attributes))
            for link in span.links
        ),
        events=tuple(
            ReceivedEvent(event.name, event.time_unix_nano, _attributes(event.attributes))
            for event in span.events
        ),
        status_code=_STATUS.get(span.status.code, str(span.status.code)),
        status_message=span.status.message,
        resource=resource,
        scope=scope,
    )


def _attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: common_pb2.AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if which is None else getattr(value, which)


def _matches(
    span: ReceivedSpan, name: str | None, attributes: Mapping[str, Any] | None, trace_id: str | None
) -> bool:
    if name is not None and span.name != name:
        return False
    if trace_id is not None and span.trace_id != trace_id:
        return False
    return all(span.attributes.get(key) == value for key, value in (attributes or {}).items())


def _is_ancestor(candidate: ReceivedSpan, span: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
    by_id = {each.span_id: each for each in spans}
    current: ReceivedSpan | None = span
    while current is not None:
        if current.span_id == candidate.span_id:
            return True
        current = by_id.get(current.parent_span_id or "")
    return False


def _describe(span: ReceivedSpan, shown: tuple[str, ...]) -> str:
    parts = [span.name, f"[{span.duration_ms:.1f} ms]"]
    if span.service_name:
        parts.append(f"({span.service_name})")
    parts.extend(f"{key}={span.attributes[key]}" for key in shown if key in span.attributes)
    if span.status_code == "ERROR":
        parts.append(f"ERROR {span.status_message}".rstrip())
    return " ".join(parts)


def _handler_for(receiver: OtlpReceiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != TRACES_PATH:
                self._answer(404, b"only POST /v1/traces lives here", "text/plain")
                return
            content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if content_type != "application/x-protobuf":
                self._answer(415, b"only application/x-protobuf is accepted", "text/plain")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "").strip().lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            except (OSError, zlib.error, protobuf_message.DecodeError) as error:
                self._answer(400, f"cannot decode the export request: {error}".encode(), "text/plain")
                return
            receiver.accept(request, headers=dict(self.headers.items()))
            response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self._answer(200, response, "application/x-protobuf")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Tests and the demo own the terminal; exports are not news.
            pass

    return Handler

"""Prometheus metrics of both processes, and the small HTTP server that exposes them on /metrics.

The CLI builds one `Metrics` per process and calls `serve_metrics` when `metrics_port` is not 0; the
reconciler, the work queue, the API client and the discovery wiring call its `observe_*`/`set_*`/`count_*`
methods. Each `Metrics` owns its own registry (no global state), so tests and a demo running both
processes in one interpreter never collide. Never opens spans, never touches the Kubernetes API.

Why prometheus-client rather than OpenTelemetry metrics with the Prometheus exporter: Prometheus
scraping is the only metrics path operators expect, prometheus-client is stable (the OpenTelemetry
Prometheus exporter is still a beta package), has no dependencies, and gives per-object registries and
the standard process_* collectors directly. Traces stay on OpenTelemetry; exemplars are not needed.
"""

from __future__ import annotations

import http.server
import threading
from typing import Final, TypeVar, cast

import prometheus_client
from prometheus_client import exposition, gc_collector, platform_collector, process_collector
from prometheus_client.metrics import MetricWrapperBase

import toolhive

M = TypeVar("M", bound=MetricWrapperBase)
NAMESPACE: Final = "toolhive"
# Reconciles run from milliseconds (no-op, cache hits) to tens of seconds (slow API under load).
RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Label value for an API call that got no HTTP status (connection refused, timeout).
NO_RESPONSE: Final = "none"

# How often the server thread checks for close(); bounds how long close() waits.
_POLL_SECONDS: Final = 0.05


class Metrics:
    """The metrics one process exposes; each instance has its own `registry`.

    Names (all prefixed `toolhive_`): reconcile_total, reconcile_duration_seconds, reconcile_queue_depth,
    managed_namespaces, kubernetes_api_requests_total, kubernetes_api_errors_total,
    discovery_grants_total, discovery_revokes_total, build_info; plus process_*/python_* collectors.
    """

    def __init__(self, *, process: str, version: str = toolhive.__version__) -> None:
        # `*_created` series double the output and nothing we know of scrapes them; the switch is
        # process-wide in prometheus-client, and every registry in our processes is one of ours.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.reconciles = prometheus_client.Counter(
            "reconcile",
            "Reconciles finished, by controller and outcome (success, requeue, invalid_spec, error, ...).",
            ["controller", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.reconcile_duration = prometheus_client.Histogram(
            "reconcile_duration_seconds",
            "Wall-clock duration of reconciles, by controller and outcome.",
            ["controller", "outcome"],
            namespace=NAMESPACE,
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.queue_depth = prometheus_client.Gauge(
            "reconcile_queue_depth",
            "Objects waiting for a reconcile worker, by controller.",
            ["controller"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.managed_namespaces = prometheus_client.Gauge(
            "managed_namespaces",
            "Namespaces this process currently serves (operator) or grants (discovery members).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.api_requests = prometheus_client.Counter(
            "kubernetes_api_requests",
            "Kubernetes API requests, by verb, resource and HTTP status code ('none': no response).",
            ["verb", "resource", "code"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.api_errors = prometheus_client.Counter(
            "kubernetes_api_errors",
            "Kubernetes API requests that failed (status >= 400 or no response), by verb, resource and code.",
            ["verb", "resource", "code"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.grants = prometheus_client.Counter(
            "discovery_grants",
            "RoleBindings discovery created to grant the operator a namespace.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.revokes = prometheus_client.Counter(
            "discovery_revokes",
            "RoleBindings discovery deleted to revoke a namespace.",
            namespace=NAMESPACE,
            registry=registry,
        )
        # Labelled children by label values: `labels()` validates and locks on every call (~2 us), and
        # these are called on every API request and reconcile. Bounded by the label values in use
        # (verbs x resources x codes, controllers x outcomes).
        self._children: dict[tuple[object, ...], MetricWrapperBase] = {}
        build_info = prometheus_client.Gauge(
            "build_info",
            "Always 1; labels carry the version and which process this is.",
            ["version", "process"],
            namespace=NAMESPACE,
            registry=registry,
        )
        build_info.labels(version=version, process=process).set(1)
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)

    def observe_reconcile(self, *, controller: str, outcome: str, seconds: float) -> None:
        """Count one finished reconcile and record its duration."""
        self._child(self.reconciles, controller, outcome).inc()
        self._child(self.reconcile_duration, controller, outcome).observe(seconds)

    def set_queue_depth(self, depth: int, *, controller: str) -> None:
        self._child(self.queue_depth, controller).set(depth)

    def set_managed_namespaces(self, count: int) -> None:
        self.managed_namespaces.set(count)

    def observe_api_request(self, *, verb: str, resource: str, code: int | None) -> None:
        """Count one API request; `code` None means no HTTP response. Errors are also counted apart."""
        label = NO_RESPONSE if code is None else str(code)
        self._child(self.api_requests, verb, resource, label).inc()
        if code is None or code >= 400:
            self._child(self.api_errors, verb, resource, label).inc()

    def _child(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, looked up once per metric and label values."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(M, child)

    def count_grant(self) -> None:
        self.grants.inc()

    def count_revoke(self) -> None:
        self.revokes.inc()

    def render(self, *, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from an HTTP Accept header."""
        encoder, content_type = exposition.choose_encoder(accept)
        return encoder(self.registry), content_type


class MetricsServer:
    """A threaded HTTP server answering GET /metrics from one `Metrics`; `close()` stops it."""

    def __init__(self, metrics: Metrics, *, port: int, host: str) -> None:
        handler = _handler_for(metrics)
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_SECONDS,), name="metrics-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(metrics: Metrics, *, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve `metrics` on http://host:port/metrics in a daemon thread (port 0 picks a free port).

    The CLI treats `observability.metrics_port == 0` as "off" and does not call this. A thread rather
    than the event loop: a scrape must still answer while the loop is busy or stuck.
    """
    return MetricsServer(metrics, port=port, host=host)


def _handler_for(metrics: Metrics) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics lives here")
                return
            body, content_type = metrics.render(accept=self.headers.get("Accept", ""))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Scrapes every few seconds would drown the process log.
            pass

    return Handler

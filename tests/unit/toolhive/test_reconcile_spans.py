"""The spans one MCPServer reconcile leaves: tree, attributes, outcome, errors and the link to a grant.

Each pass runs `reconcile.process` as the work queue would, against a loopback API (RBAC off) started
once for this module, with the real `kube.Api` client, so every API call is a `k8s.api` span. The
multiplexer's cache is stood in for by a dict refreshed from the API between passes (spans of that
refresh are discarded). Spans land in the session's in-memory exporter behind the global provider.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation import tracecontext

from discovery import constants as discovery_constants
from discovery import kube
from toolhive import apply, operator, reconcile, resources
from toolhive.builders.inputs import BuildConfig
from toolhive.multiplexer import Multiplexer
from toolhive.testing import LoopbackApi
from toolhive.testing import crds as testing_crds
from toolhive.workqueue import Result, Trigger

T = TypeVar("T")
FAST_RETRIES = kube.RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.005)
CACHED = (resources.MCPSERVERS, resources.DEPLOYMENTS, resources.SERVICES, resources.STATEFULSETS)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
_numbers = itertools.count()


class World:
    """The loopback API, one asyncio runner and one API client for the module; a dict for the cache."""

    def __init__(self, loopback: LoopbackApi, kubeconfig: Path, *, exporter: InMemorySpanExporter) -> None:
        self.loopback = loopback
        self.exporter = exporter
        self.runner = asyncio.Runner()
        self.api = self.run(kube.Api.connect(kubeconfig=str(kubeconfig), retry=FAST_RETRIES))
        self.cache: dict[tuple[str, str, str], kube.Body] = {}
        self.run(self._install_crds())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def close(self) -> None:
        self.run(self.api.close())
        self.runner.close()

    async def _install_crds(self) -> None:
        await testing_crds.create_all(self.api)
        # The API serves a new CRD's resource once it is established: poll with a deadline.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                await self.api.list(resources.MCPSERVERS, namespace="default")
                return
            except kube.ApiError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.01)

    def namespace(self) -> str:
        name = f"team-{next(_numbers)}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.run(self.api.create(kube.NAMESPACES, body))
        return name

    def server(self, namespace: str, *, name: str = "fetch", **spec: Any) -> kube.Body:
        body = {
            "apiVersion": resources.MCPSERVERS.api_version,
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:1.0.1", "transport": "stdio", **spec},
        }
        return self.run(self.api.create(resources.MCPSERVERS, body, namespace=namespace))

    def refresh(self, namespace: str) -> None:
        """Fill the stand-in cache from the API, as the multiplexer's informers would have."""

        async def fill() -> None:
            for res in CACHED:
                for body in (await self.api.list(res, namespace=namespace))[0]:
                    self.cache[(res.plural, namespace, body["metadata"]["name"])] = body

        self.run(fill())

    def lookup(self, res: kube.Resource, *, namespace: str, name: str) -> kube.Body | None:
        return self.cache.get((res.plural, namespace, name))

    def context(self, applier: apply.Applier) -> reconcile.Context:
        return reconcile.Context(api=self.api, applier=applier, lookup=self.lookup, build=BuildConfig())

    def process(
        self,
        applier: apply.Applier,
        namespace: str,
        name: str = "fetch",
        *,
        triggers: tuple[Trigger, ...] = (Trigger("mcpserver.added"),),
    ) -> Result:
        """Refresh the cache, then run one pass; only the pass's spans are left in the exporter."""
        self.refresh(namespace)
        self.exporter.clear()
        return self.run(reconcile.process((namespace, name), triggers, ctx=self.context(applier)))


@pytest.fixture(scope="module")
def world(
    global_span_exporter: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with LoopbackApi(rbac=False) as loopback:
        kubeconfig = loopback.write_kubeconfig(tmp_path_factory.mktemp("reconcile-spans") / "kubeconfig")
        world = World(loopback, kubeconfig, exporter=global_span_exporter)
        try:
            yield world
        finally:
            world.close()


@pytest.fixture
def applier(world: World) -> apply.Applier:
    return apply.Applier(world.api)


@pytest.fixture
def namespace(world: World) -> str:
    return world.namespace()


# --- reading span trees ---------------------------------------------------------------------------


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"expected one {name!r}, found {len(found)} among {[s.name for s in spans]}"
    return found[0]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """Direct children of `parent`, by start time."""
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return sorted(found, key=lambda span: span.start_time or 0)


def names(spans: Sequence[ReadableSpan]) -> list[str]:
    return [span.name for span in spans]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def api_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith("k8s.api ")]


def is_write(span: ReadableSpan) -> bool:
    return attrs(span).get("k8s.api.verb") in WRITE_VERBS


# --- a pass that creates ---------------------------------------------------------------------------


def test_a_creating_pass_is_one_trace_rooted_at_the_reconcile_with_steps_and_api_calls_below(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    server = world.server(namespace)
    world.process(applier, namespace)
    finished = spans.get_finished_spans()
    root = one(finished, "toolhive.reconcile")
    assert root.parent is None
    assert root.kind is trace.SpanKind.INTERNAL
    assert {span.context.trace_id for span in finished} == {root.context.trace_id}
    assert attrs(root) == {
        "k8s.namespace.name": namespace,
        "toolhive.mcpserver.name": "fetch",
        "toolhive.mcpserver.uid": server["metadata"]["uid"],
        "toolhive.mcpserver.generation": 1,
        "toolhive.reconcile.trigger": "mcpserver.added",
        "toolhive.reconcile.outcome": "changed",
        "toolhive.reconcile.writes": sum(applier.writes.values()),
    }
    steps = [name for name in names(children(finished, root)) if not name.startswith("k8s.api ")]
    assert steps[:2] == ["toolhive.decide", "toolhive.build"]
    assert steps[-1] == "toolhive.status"
    applied = [name.removeprefix("toolhive.apply ") for name in steps[2:-1]]
    assert {"ConfigMap", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"} <= set(applied)
    assert all(name.startswith("toolhive.apply ") for name in steps[2:-1])


def test_every_api_call_of_a_pass_is_a_client_span_inside_it_never_an_orphan(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace)
    world.process(applier, namespace)
    finished = spans.get_finished_spans()
    root = one(finished, "toolhive.reconcile")
    calls = api_spans(finished)
    assert calls and all(span.kind is trace.SpanKind.CLIENT for span in calls)
    assert all(span.parent is not None for span in calls)
    assert len(world.loopback.requests) >= len(calls)
    deployment = one(finished, "toolhive.apply Deployment")
    (write,) = [span for span in children(finished, deployment) if is_write(span)]
    assert write.name == "k8s.api patch deployments"
    assert attrs(write) | {"url.full": None, "server.port": None} == {
        "http.request.method": "PATCH",
        "url.path": f"/apis/apps/v1/namespaces/{namespace}/deployments/fetch",
        "url.full": None,
        "server.address": "127.0.0.1",
        "server.port": None,
        "http.response.status_code": 201,
        "k8s.resource": "deployments",
        "k8s.api.verb": "patch",
    }
    assert str(attrs(write)["url.full"]).startswith(world.loopback.url + "/apis/apps/v1/")
    assert attrs(deployment) == {"toolhive.apply.name": "fetch", "toolhive.apply.changed": True}
    status = one(finished, "toolhive.status")
    assert names(children(finished, status)) == ["k8s.api patch mcpservers"]
    assert root.status.status_code is trace.StatusCode.UNSET


def test_a_first_pass_applies_without_reading_first_and_has_no_error_spans(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace)
    world.process(applier, namespace)
    finished = spans.get_finished_spans()
    assert [span.name for span in finished if span.status.status_code is trace.StatusCode.ERROR] == []
    assert all(span.events == () for span in finished)
    # A server without status was never reconciled: its children cannot exist, so nothing is read first.
    assert [
        attrs(span)["url.path"] for span in api_spans(finished) if attrs(span)["k8s.api.verb"] == "get"
    ] == []


def test_reading_an_absent_object_is_a_plain_404_not_an_error_span(
    world: World, namespace: str, spans: InMemorySpanExporter
) -> None:
    assert world.run(world.api.get_or_none(resources.SERVICEACCOUNTS, "absent", namespace=namespace)) is None
    (span,) = api_spans(spans.get_finished_spans())
    assert attrs(span)["http.response.status_code"] == 404
    assert span.status.status_code is not trace.StatusCode.ERROR
    assert "error.type" not in attrs(span) and span.events == ()


def test_the_writes_attribute_counts_the_write_requests_the_pass_sent(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace)
    world.process(applier, namespace)
    finished = spans.get_finished_spans()
    writes = [span for span in api_spans(finished) if is_write(span)]
    assert attrs(one(finished, "toolhive.reconcile"))["toolhive.reconcile.writes"] == len(writes)


# --- a pass with nothing to do -------------------------------------------------------------------


def test_a_no_op_pass_is_unchanged_with_zero_writes_and_no_write_calls(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace)
    world.process(applier, namespace)
    world.process(applier, namespace)  # the cache now holds the Deployment: status settles
    world.process(applier, namespace, triggers=(Trigger("deployment.modified"),))
    finished = spans.get_finished_spans()
    root = one(finished, "toolhive.reconcile")
    assert attrs(root)["toolhive.reconcile.outcome"] == "unchanged"
    assert attrs(root)["toolhive.reconcile.writes"] == 0
    assert attrs(root)["toolhive.reconcile.trigger"] == "deployment.modified"
    assert api_spans(finished) == []
    applies = [span for span in finished if span.name.startswith("toolhive.apply ")]
    assert applies and all(attrs(span)["toolhive.apply.changed"] is False for span in applies)


def test_a_pass_for_a_server_gone_from_the_cache_is_gone_and_touches_nothing(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.process(applier, namespace, "never-created", triggers=(Trigger("mcpserver.deleted"),))
    finished = spans.get_finished_spans()
    assert names(finished) == ["toolhive.reconcile"]
    root = finished[0]
    assert attrs(root)["toolhive.reconcile.outcome"] == "gone"
    assert "toolhive.mcpserver.uid" not in attrs(root)


# --- failures --------------------------------------------------------------------------------------


def test_an_api_failure_after_retries_marks_the_call_the_step_and_the_pass_as_errors(
    world: World,
    applier: apply.Applier,
    namespace: str,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.server(namespace)
    world.loopback.faults.add(status=500, verb="patch", path="/deployments/", count=None)
    try:
        result = world.process(applier, namespace)
    finally:
        world.loopback.faults.clear()
    assert result.retry
    finished = spans.get_finished_spans()
    root = one(finished, "toolhive.reconcile")
    assert attrs(root)["toolhive.reconcile.outcome"] == "error"
    assert attrs(root)["error.type"] == "discovery.kube.ApiError"
    assert root.status.status_code is trace.StatusCode.ERROR
    assert "500" in (root.status.description or "")
    (event,) = [event for event in root.events if event.name == "exception"]
    assert dict(event.attributes or {})["exception.type"] == "discovery.kube.ApiError"
    step = one(finished, "toolhive.apply Deployment")
    assert step.status.status_code is trace.StatusCode.ERROR
    (call,) = [span for span in children(finished, step) if is_write(span)]
    assert call.status.status_code is trace.StatusCode.ERROR
    assert attrs(call)["http.response.status_code"] == 500
    assert attrs(call)["error.type"] == "500"
    assert attrs(call)["http.request.resend_count"] == FAST_RETRIES.attempts - 1
    assert [event.name for event in call.events] == ["exception"]
    assert "toolhive.status" not in names(finished)
    (logged,) = [record for record in caplog.records if record.name == "toolhive.reconcile"]
    assert logged.__dict__["toolhive.mcpserver.name"] == "fetch"


def test_an_invalid_spec_is_reported_in_status_without_building_or_applying(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace, oidcConfigRef={"name": "corporate-idp", "audience": "fetch"})
    result = world.process(applier, namespace)
    assert not result.retry
    finished = spans.get_finished_spans()
    root = one(finished, "toolhive.reconcile")
    assert attrs(root)["toolhive.reconcile.outcome"] == "invalid"
    # The operator did its job (it reported the user's mistake): not a failed span.
    assert root.status.status_code is trace.StatusCode.UNSET
    steps = names(children(finished, root))
    assert steps[:2] == ["toolhive.decide", "toolhive.status"]
    assert not any(name.startswith(("toolhive.build", "toolhive.apply")) for name in names(finished))
    assert names(children(finished, one(finished, "toolhive.status"))) == ["k8s.api patch mcpservers"]
    writes = [span for span in api_spans(finished) if is_write(span)]
    assert [span.name for span in writes] == ["k8s.api patch mcpservers", "k8s.api create events"]
    assert attrs(root)["toolhive.reconcile.writes"] == 2


# --- causality from discovery --------------------------------------------------------------------


def test_passes_queued_by_a_namespace_join_link_to_the_grant_span_recorded_on_the_rolebinding(
    world: World, applier: apply.Applier, namespace: str, spans: InMemorySpanExporter
) -> None:
    world.server(namespace, name="fetch")
    world.server(namespace, name="github")
    # Discovery's grant span, as another process would have recorded it (its own provider, no export).
    grant_tracer = TracerProvider().get_tracer("discovery")
    with grant_tracer.start_as_current_span("discovery.grant") as grant:
        carrier: dict[str, str] = {}
        tracecontext.TraceContextTextMapPropagator().inject(carrier)
    annotations = {discovery_constants.TRACEPARENT_ANNOTATION: carrier["traceparent"]}
    rolebinding = {"metadata": {"annotations": annotations}}
    link = operator._link_for_grant(rolebinding)

    async def join() -> None:
        ctx: reconcile.Context

        async def process(key: tuple[str, str], triggers: tuple[Trigger, ...]) -> Result:
            return await reconcile.process(key, triggers, ctx=ctx)

        async def release(namespace: str) -> None:
            return None

        mux = Multiplexer(world.api, process=process, on_release=release, workers=2)
        ctx = reconcile.Context(api=world.api, applier=applier, lookup=mux.lookup, build=BuildConfig())
        queue = asyncio.create_task(mux.queue.run())
        try:
            await mux.serve(namespace, link=link)
            deadline = asyncio.get_running_loop().time() + 10
            while len(roots()) < 2:
                assert asyncio.get_running_loop().time() < deadline, names(spans.get_finished_spans())
                await asyncio.sleep(0.01)
        finally:
            await mux.queue.drain(timeout=5)
            queue.cancel()
            await asyncio.gather(queue, return_exceptions=True)
            await mux.stop()

    def roots() -> list[ReadableSpan]:
        return [
            span
            for span in spans.get_finished_spans()
            if span.name == "toolhive.reconcile" and attrs(span)["toolhive.reconcile.outcome"] == "changed"
        ]

    spans.clear()
    world.run(join())
    first = roots()[:2]
    assert sorted(attrs(span)["toolhive.mcpserver.name"] for span in first) == ["fetch", "github"]
    for root in first:
        assert [(link.context.trace_id, link.context.span_id) for link in root.links] == [
            (grant.get_span_context().trace_id, grant.get_span_context().span_id)
        ]
        assert root.context.trace_id != grant.get_span_context().trace_id  # a link, not a parent
        assert "mcpserver.added" in attrs(root)["toolhive.reconcile.trigger"]


def test_a_malformed_traceparent_on_the_grant_gives_no_link_and_no_error() -> None:
    for value in ("", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"):
        grant = {"metadata": {"annotations": {discovery_constants.TRACEPARENT_ANNOTATION: value}}}
        assert operator._link_for_grant(grant) is None
    assert operator._link_for_grant(None) is None


# --- the API client's own spans --------------------------------------------------------------------


def test_a_call_that_gets_no_answer_names_the_exception_type_and_has_no_status_code(
    spans: InMemorySpanExporter,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def no_token() -> str | None:
        return None

    async def call() -> None:
        api = kube.Api(
            host=f"http://127.0.0.1:{port}",
            ssl_context=None,
            auth=no_token,
            retry=kube.RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002),
        )
        try:
            with pytest.raises(kube.ApiError) as raised:
                await api.get(resources.MCPSERVERS, "fetch", namespace="team-a")
            assert raised.value.status == 503
        finally:
            await api.close()

    asyncio.run(call())
    (span,) = spans.get_finished_spans()
    assert span.name == "k8s.api get mcpservers"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert attrs(span)["error.type"] == "ClientConnectorError"
    assert "http.response.status_code" not in attrs(span)
    assert attrs(span)["http.request.resend_count"] == 1
    assert (attrs(span)["server.address"], attrs(span)["server.port"]) == ("127.0.0.1", port)

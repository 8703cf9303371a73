"""The spans discovery leaves for a grant and a revoke (decision, write, API calls, the traceparent), and
what it reports to its metrics observer.

The controller runs with its default tracer (OpenTelemetry's global provider, so the session's in-memory
exporter sees its spans and the API client's `k8s.api` spans in one tree) against a loopback API (RBAC
off) started once for this module. Each pass is `Controller.converge` on a snapshot listed from the API,
as the informers would have delivered it; spans of that listing are discarded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from discovery import config as discovery_config
from discovery import constants, controller, kube
from toolhive import metrics  # the observer the CLI wires; discovery itself never imports toolhive
from toolhive.testing import LoopbackApi
from toolhive.testing import crds as testing_crds

T = TypeVar("T")
LABEL = "toolhive.stacklok.dev/enabled"
RESOURCE = discovery_config.discovery_resource("toolhive.stacklok.dev", "v1alpha1")
CONFIG = discovery_config.Config(
    resource=RESOURCE,
    cluster_role="toolhive-operator-manager-role",
    subject_name="toolhive-operator",
    subject_namespace="toolhive-system",
    grace_seconds=300,
)
FAST_RETRIES = kube.RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.005)
_numbers = itertools.count()


class World:
    """Loopback API, one runner and API client, one NamespaceDiscovery selecting LABEL=true."""

    def __init__(self, loopback: LoopbackApi, kubeconfig: Path, *, exporter: InMemorySpanExporter) -> None:
        self.loopback = loopback
        self.exporter = exporter
        self.runner = asyncio.Runner()
        self.api = self.run(kube.Api.connect(kubeconfig=str(kubeconfig), retry=FAST_RETRIES))
        self.run(self._install())
        self.metrics = metrics.Metrics(process="discovery")
        self.controller = controller.Controller(
            controller.Context(api=self.api, config=CONFIG, observer=self.metrics)
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def close(self) -> None:
        self.run(self.api.close())
        self.runner.close()

    async def _install(self) -> None:
        await testing_crds.create_all(self.api)
        body = {
            "apiVersion": RESOURCE.api_version,
            "kind": RESOURCE.kind,
            "metadata": {"name": CONFIG.name},
            "spec": {"selectors": [{"matchLabels": {LABEL: "true"}}]},
        }
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # a new CRD is served once established: poll with a deadline
            try:
                await self.api.create(RESOURCE, body)
                return
            except kube.ApiError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.01)

    def namespace(self, *, labelled: bool) -> str:
        name = f"team-{next(_numbers)}"
        labels = {LABEL: "true"} if labelled else {}
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        self.run(self.api.create(kube.NAMESPACES, body))
        return name

    def label(self, namespace: str, value: str | None) -> None:
        patch = {"metadata": {"labels": {LABEL: value}}}
        self.run(self.api.patch(kube.NAMESPACES, namespace, patch))

    def binding(self, namespace: str) -> kube.Body | None:
        return self.run(self.api.get_or_none(kube.ROLEBINDINGS, CONFIG.rolebinding_name, namespace=namespace))

    def release(self, namespace: str) -> None:
        """What the operator does once it let go: annotate the grant released."""
        patch = {"metadata": {"annotations": {constants.RELEASED_ANNOTATION: "true"}}}
        self.run(self.api.patch(kube.ROLEBINDINGS, CONFIG.rolebinding_name, patch, namespace=namespace))

    def converge(self) -> controller.Result:
        """One pass over the current state; only the pass's spans are left in the exporter."""

        async def snapshot() -> controller.Snapshot:
            namespaces, _ = await self.api.list(kube.NAMESPACES)
            bindings, _ = await self.api.list(kube.ROLEBINDINGS, label_selector=CONFIG.managed_selector)
            return controller.Snapshot(
                discovery=await self.api.get(RESOURCE, CONFIG.name),
                namespaces=tuple(namespaces),
                rolebindings=tuple(bindings),
            )

        state = self.run(snapshot())
        self.exporter.clear()
        return self.run(self.controller.converge(state))


@pytest.fixture(scope="module")
def world(
    global_span_exporter: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with LoopbackApi(rbac=False) as loopback:
        kubeconfig = loopback.write_kubeconfig(tmp_path_factory.mktemp("discovery-spans") / "kubeconfig")
        world = World(loopback, kubeconfig, exporter=global_span_exporter)
        try:
            yield world
        finally:
            world.close()


def one(spans: Sequence[ReadableSpan], name: str, **attributes: Any) -> ReadableSpan:
    found = [
        span
        for span in spans
        if span.name == name and all(attrs(span).get(key) == value for key, value in attributes.items())
    ]
    assert len(found) == 1, f"expected one {name!r} {attributes}, found {[(s.name, attrs(s)) for s in spans]}"
    return found[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return sorted(found, key=lambda span: span.start_time or 0)


def names(spans: Sequence[ReadableSpan]) -> list[str]:
    return [span.name for span in spans]


def test_a_grant_is_decision_then_grant_then_the_rolebinding_create_with_its_traceparent(
    world: World, spans: InMemorySpanExporter
) -> None:
    namespace = world.namespace(labelled=True)
    world.converge()
    finished = spans.get_finished_spans()
    decide = one(finished, "discovery.decide", **{"k8s.namespace.name": namespace})
    assert decide.parent is None
    assert attrs(decide) == {
        "k8s.namespace.name": namespace,
        "discovery.decision.member": True,
        "discovery.decision.reason": "SelectorMatched",
        "discovery.decision.message": attrs(decide)["discovery.decision.message"],
    }
    assert LABEL in str(attrs(decide)["discovery.decision.message"])
    grant = one(finished, "discovery.grant", **{"k8s.namespace.name": namespace})
    assert grant.parent is not None and grant.parent.span_id == decide.context.span_id
    assert grant.context.trace_id == decide.context.trace_id
    assert attrs(grant) == {
        "k8s.namespace.name": namespace,
        "discovery.rolebinding.name": CONFIG.rolebinding_name,
        "discovery.action": "Create",
        "discovery.decision.reason": "SelectorMatched",
    }
    assert grant.status.status_code is trace.StatusCode.UNSET
    calls = children(finished, grant)
    assert names(calls) == ["k8s.api create rolebindings", "k8s.api create events"]
    create = calls[0]
    assert create.kind is trace.SpanKind.CLIENT
    assert attrs(create)["http.request.method"] == "POST"
    assert (
        attrs(create)["url.path"] == f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    )
    assert attrs(create)["http.response.status_code"] == 201
    binding = world.binding(namespace)
    assert binding is not None
    traceparent = binding["metadata"]["annotations"][constants.TRACEPARENT_ANNOTATION]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert (int(trace_id, 16), int(span_id, 16)) == (grant.context.trace_id, grant.context.span_id)


def test_publishing_membership_is_its_own_span_with_the_counts_and_its_status_patch(
    world: World, spans: InMemorySpanExporter
) -> None:
    world.namespace(labelled=True)
    world.converge()
    finished = spans.get_finished_spans()
    publish = one(finished, "discovery.publish")
    assert publish.parent is None
    assert attrs(publish)["discovery.members"] >= 1
    (patch,) = children(finished, publish)
    assert patch.name == "k8s.api patch namespacediscoveries"
    assert attrs(patch)["url.path"].endswith(f"/namespacediscoveries/{CONFIG.name}/status")


def test_an_unchanged_world_opens_no_decision_or_write_spans(
    world: World, spans: InMemorySpanExporter
) -> None:
    world.namespace(labelled=True)
    world.converge()
    world.converge()
    world.converge()
    assert spans.get_finished_spans() == ()


def test_a_revoke_drains_first_and_deletes_after_the_release_under_the_unselect_decision(
    world: World, spans: InMemorySpanExporter
) -> None:
    namespace = world.namespace(labelled=True)
    world.converge()
    world.converge()
    world.label(namespace, None)
    world.converge()
    first = spans.get_finished_spans()
    decide = one(first, "discovery.decide", **{"k8s.namespace.name": namespace})
    assert attrs(decide)["discovery.decision.member"] is False
    assert attrs(decide)["discovery.decision.reason"] == "NotSelected"
    draining = one(first, "discovery.revoke", **{"k8s.namespace.name": namespace})
    assert attrs(draining)["discovery.action"] == "MarkDraining"
    assert draining.parent is not None and draining.parent.span_id == decide.context.span_id
    assert names(children(first, draining)) == ["k8s.api update rolebindings", "k8s.api create events"]
    binding = world.binding(namespace)
    assert binding is not None
    traceparent = binding["metadata"]["annotations"][constants.TRACEPARENT_ANNOTATION]
    assert traceparent.split("-")[2] == f"{draining.context.span_id:016x}"

    world.release(namespace)
    world.converge()
    second = spans.get_finished_spans()
    assert "discovery.decide" not in names(second)  # the decision did not change
    revoke = one(second, "discovery.revoke", **{"k8s.namespace.name": namespace})
    assert attrs(revoke)["discovery.action"] == "Revoke"
    # The revoke, a pass later, still belongs to the trace of the decision that caused it.
    assert revoke.context.trace_id == decide.context.trace_id
    assert revoke.parent is not None and revoke.parent.span_id == decide.context.span_id
    assert names(children(second, revoke)) == [
        "k8s.api update rolebindings",
        "k8s.api delete rolebindings",
        "k8s.api create events",
    ]
    assert world.binding(namespace) is None


def test_a_failed_grant_write_marks_the_call_and_the_grant_span_as_errors_and_records_them(
    world: World, spans: InMemorySpanExporter
) -> None:
    namespace = world.namespace(labelled=True)
    world.loopback.faults.add(
        status=500, verb="create", path=f"/namespaces/{namespace}/rolebindings", count=None
    )
    try:
        result = world.converge()
    finally:
        world.loopback.faults.clear()
    assert result.retry
    finished = spans.get_finished_spans()
    grant = one(finished, "discovery.grant", **{"k8s.namespace.name": namespace})
    assert grant.status.status_code is trace.StatusCode.ERROR
    assert attrs(grant)["error.type"] == "500"
    assert [event.name for event in grant.events] == ["exception"]
    (call,) = children(finished, grant)  # no Event for a grant not made
    assert call.name == "k8s.api create rolebindings"
    assert call.status.status_code is trace.StatusCode.ERROR
    assert attrs(call)["http.response.status_code"] == 500
    assert attrs(call)["http.request.resend_count"] == FAST_RETRIES.attempts - 1
    world.converge()  # the next pass grants
    assert world.binding(namespace) is not None


def test_grants_revokes_and_the_member_count_reach_the_metrics_observer(
    world: World, spans: InMemorySpanExporter
) -> None:
    def sample(name: str) -> float:
        return world.metrics.registry.get_sample_value(name) or 0.0

    def members() -> int:
        status = world.run(world.api.get(RESOURCE, CONFIG.name)).get("status") or {}
        return int(status.get("memberCount", 0))

    grants, revokes = sample("toolhive_discovery_grants_total"), sample("toolhive_discovery_revokes_total")
    namespace = world.namespace(labelled=True)
    world.converge()
    world.converge()
    assert sample("toolhive_discovery_grants_total") == grants + 1
    assert sample("toolhive_managed_namespaces") == members() >= 1
    world.label(namespace, None)
    world.converge()
    world.release(namespace)
    world.converge()
    assert sample("toolhive_discovery_revokes_total") == revokes + 1
    # A restarted process publishes nothing new, yet must report the members it serves.
    restarted = metrics.Metrics(process="discovery")
    again = controller.Controller(controller.Context(api=world.api, config=CONFIG, observer=restarted))
    world.controller, previous = again, world.controller
    try:
        world.converge()
    finally:
        world.controller = previous
    assert restarted.registry.get_sample_value("toolhive_managed_namespaces") == members() >= 1

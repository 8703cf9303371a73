"""The controller's pass and the writer, against an in-memory API: writes, events, status, spans, retries."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from discovery import config as discovery_config
from discovery import constants, controller, kube, policy
from tests.unit.discovery import fakes

LABEL = "example.com/enabled"
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RESOURCE = discovery_config.discovery_resource("example.com", "v1alpha1")
CONFIG = discovery_config.Config(
    resource=RESOURCE,
    name="main",
    cluster_role="grantee-role",
    subject_name="grantee",
    subject_namespace="grantee-system",
    rolebinding_name="grantee",
    grace_seconds=30,
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class World:
    """A fake API holding namespaces, RoleBindings and the NamespaceDiscovery object, plus a controller."""

    def __init__(self, exporter: InMemorySpanExporter, *, spec: dict[str, Any] | None = None) -> None:
        self.api = fakes.FakeApi()
        self.clock = Clock()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.exporter = exporter
        self.controller = controller.Controller(
            controller.Context(
                api=self.api,  # type: ignore[arg-type]
                config=CONFIG,
                tracer=provider.get_tracer("test"),
                clock=self.clock,
            )
        )
        if spec is None:
            spec = {"selectors": [{"matchLabels": {LABEL: "true"}}]}
        self.api.put(
            "namespacediscoveries",
            {
                "apiVersion": "example.com/v1alpha1",
                "kind": "NamespaceDiscovery",
                "metadata": {"name": "main"},
                "spec": spec,
            },
        )

    def namespace(self, name: str, **labels: str) -> None:
        self.api.put(
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )

    def snapshot(self) -> controller.Snapshot:
        return controller.Snapshot(
            discovery=self.api.objects.get(("namespacediscoveries", "", "main")),
            namespaces=tuple(self.api.items("namespaces")),
            rolebindings=tuple(self.api.items("rolebindings")),
        )

    def converge(self) -> controller.Result:
        self.api.calls.clear()
        return asyncio.run(self.controller.converge(self.snapshot()))

    def binding(self, namespace: str) -> dict[str, Any] | None:
        return self.api.objects.get(("rolebindings", namespace, "grantee"))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.api.objects[("namespacediscoveries", "", "main")].get("status") or {})

    def events(self) -> list[tuple[str, str, str]]:
        return [
            (body["type"], body["reason"], body["involvedObject"]["name"])
            for body in self.api.items("events")
        ]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def world(exporter: InMemorySpanExporter) -> Iterator[World]:
    yield World(exporter)


def test_a_labelled_namespace_gets_a_grant_an_event_and_membership_in_the_same_pass(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.namespace("team-b")
    world.converge()
    binding = world.binding("team-a")
    assert binding is not None
    assert binding["roleRef"]["name"] == "grantee-role"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "grantee", "namespace": "grantee-system"}
    ]
    assert binding["metadata"]["labels"][constants.OWNER_LABEL] == "main"
    assert binding["metadata"]["finalizers"] == [constants.GRANT_FINALIZER]
    assert world.binding("team-b") is None
    # The create's answer confirms the grant: no pass in between publishes it as pending first.
    assert (world.status["members"], world.status["pending"]) == (["team-a"], [])
    assert ("Normal", "Granted", "team-a") in world.events()
    writes = [(verb, plural) for verb, plural, _, _ in world.api.writes()]
    assert writes == [
        ("create", "rolebindings"),
        ("patch/status", "namespacediscoveries"),
        ("create", "events"),
    ], "the grant first, then one status write, then the Event"


def test_a_grant_not_made_is_published_as_pending(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.api.failures[("create", "rolebindings")] = kube.ApiError(500, {"reason": "InternalError"})
    assert world.converge().retry
    assert (world.status["members"], world.status["pending"]) == ([], ["team-a"])
    assert world.events() == []


def test_the_next_pass_confirms_membership_and_a_converged_pass_writes_nothing(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.converge()
    world.converge()
    assert world.status["members"] == ["team-a"]
    assert world.status["memberCount"] == 1
    world.converge()
    assert world.api.writes() == []


def test_the_grant_carries_the_traceparent_of_its_grant_span_child_of_the_decision(
    world: World, exporter: InMemorySpanExporter
) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.converge()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    decide, grant = spans["discovery.decide"], spans["discovery.grant"]
    assert decide.attributes is not None and grant.attributes is not None
    assert decide.attributes["k8s.namespace.name"] == "team-a"
    assert decide.attributes["discovery.decision.member"] is True
    assert decide.attributes["discovery.decision.reason"] == "SelectorMatched"
    assert grant.parent is not None and grant.parent.span_id == decide.context.span_id
    binding = world.binding("team-a")
    assert binding is not None
    traceparent = binding["metadata"]["annotations"][constants.TRACEPARENT_ANNOTATION]
    assert traceparent.startswith(f"00-{grant.context.trace_id:032x}-{grant.context.span_id:016x}-")


def test_only_changed_decisions_open_a_decide_span(world: World, exporter: InMemorySpanExporter) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.namespace("quiet")
    world.converge()
    world.converge()
    decided = [span for span in exporter.get_finished_spans() if span.name == "discovery.decide"]
    assert [span.attributes["k8s.namespace.name"] for span in decided if span.attributes] == ["team-a"]


def grant_and_confirm(world: World, namespace: str = "team-a") -> None:
    world.namespace(namespace, **{LABEL: "true"})
    world.converge()
    world.converge()
    assert namespace in world.status["members"]


def test_unlabelling_marks_the_grant_draining_and_waits_for_the_grace_period(world: World) -> None:
    grant_and_confirm(world)
    world.namespace("team-a")
    result = world.converge()
    binding = world.binding("team-a")
    assert binding is not None
    assert binding["metadata"]["annotations"][constants.DRAINING_ANNOTATION] == "2026-01-02T03:04:05Z"
    assert world.status["draining"] == ["team-a"]
    assert world.status["members"] == []
    assert result.requeue_after == timedelta(seconds=30)
    world.clock.now = START + timedelta(seconds=10)
    assert world.converge().requeue_after == timedelta(seconds=20)
    assert world.binding("team-a") is not None


def test_the_grantee_release_lets_the_grant_go_finalizer_first(world: World) -> None:
    grant_and_confirm(world)
    world.namespace("team-a")
    world.converge()
    binding = world.binding("team-a")
    assert binding is not None
    binding["metadata"]["annotations"][constants.RELEASED_ANNOTATION] = "true"
    world.api.put("rolebindings", binding)
    world.converge()
    assert world.binding("team-a") is None
    assert [call[0] for call in world.api.writes() if call[1] == "rolebindings"] == ["update", "delete"]
    assert ("Normal", "Revoked", "team-a") in world.events()
    world.converge()
    assert world.status["draining"] == []


def test_the_grace_period_revokes_without_a_release(world: World) -> None:
    grant_and_confirm(world)
    world.namespace("team-a")
    world.converge()
    world.clock.now = START + timedelta(seconds=30)
    world.converge()
    assert world.binding("team-a") is None


def test_relabelling_while_draining_restores_the_grant(world: World) -> None:
    grant_and_confirm(world)
    world.namespace("team-a")
    world.converge()
    world.namespace("team-a", **{LABEL: "true"})
    world.converge()
    binding = world.binding("team-a")
    assert binding is not None
    assert constants.DRAINING_ANNOTATION not in binding["metadata"].get("annotations", {})
    assert world.status["members"] == ["team-a"]
    assert ("Normal", "Restored", "team-a") in world.events()


def test_a_foreign_binding_with_the_grant_name_is_left_alone_and_reported_once(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    foreign = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "grantee", "namespace": "team-a", "labels": {constants.OWNER_LABEL: "other"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [],
    }
    world.api.put("rolebindings", foreign)
    world.converge()
    assert [call for call in world.api.writes() if call[1] == "rolebindings"] == []
    assert world.status["pending"] == ["team-a"]
    ready = next(c for c in world.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "GrantConflict"
    world.converge()
    assert world.events().count(("Warning", "GrantConflict", "team-a")) == 1


def test_an_invalid_selector_selects_nothing_and_is_reported_once(exporter: InMemorySpanExporter) -> None:
    world = World(
        exporter, spec={"selectors": [{"matchExpressions": [{"key": LABEL, "operator": "Equals"}]}]}
    )
    world.namespace("team-a", **{LABEL: "true"})
    world.converge()
    world.converge()
    assert world.binding("team-a") is None
    valid = next(c for c in world.status["conditions"] if c["type"] == "SelectorsValid")
    assert valid["status"] == "False"
    assert "operator" in valid["message"]
    assert world.events().count(("Warning", "InvalidSelector", "main")) == 1


def test_a_missing_discovery_object_holds_every_grant(world: World) -> None:
    grant_and_confirm(world)
    del world.api.objects[("namespacediscoveries", "", "main")]
    result = world.converge()
    assert "not found" in result.held
    assert world.api.writes() == []
    assert world.binding("team-a") is not None


def test_a_conflicting_write_asks_for_another_pass_instead_of_failing(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.api.failures[("create", "rolebindings")] = kube.ApiError(409, {"reason": "AlreadyExists"})
    result = world.converge()
    assert result.retry
    assert world.binding("team-a") is None
    assert not world.converge().retry
    assert world.binding("team-a") is not None


def test_a_deleted_grant_is_recreated_and_an_edited_one_repaired(world: World) -> None:
    grant_and_confirm(world)
    binding = world.binding("team-a")
    assert binding is not None
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "intruder", "namespace": "x"}]
    world.api.put("rolebindings", binding)
    world.converge()
    repaired = world.binding("team-a")
    assert repaired is not None and repaired["subjects"][0]["name"] == "grantee"
    del world.api.objects[("rolebindings", "team-a", "grantee")]
    world.converge()
    assert world.binding("team-a") is not None


def test_a_terminating_member_namespace_drains_instead_of_losing_its_grant(world: World) -> None:
    grant_and_confirm(world)
    namespace = world.api.objects[("namespaces", "", "team-a")]
    namespace["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    world.converge()
    assert world.status["draining"] == ["team-a"]
    assert world.binding("team-a") is not None


def test_own_writes_are_visible_to_the_next_pass_before_the_watch_delivers_them(world: World) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.converge()
    # The informer caches are empty (never run); the snapshot still shows the grant just created.
    keys = [
        (rb["metadata"]["namespace"], rb["metadata"]["name"])
        for rb in world.controller.snapshot().rolebindings
    ]
    assert keys == [("team-a", "grantee")]


def test_run_stops_promptly_when_asked_before_the_caches_sync(world: World) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(world.controller.run(stop), timeout=5)

    asyncio.run(scenario())


def test_config_refuses_empty_names_and_a_namespaced_resource() -> None:
    with pytest.raises(ValueError, match="cluster_role"):
        discovery_config.Config(resource=RESOURCE, cluster_role="", subject_name="a", subject_namespace="b")
    namespaced = kube.Resource("example.com", "v1", "things", "Thing")
    with pytest.raises(ValueError, match="cluster-scoped"):
        discovery_config.Config(
            resource=namespaced, cluster_role="r", subject_name="a", subject_namespace="b"
        )
    with pytest.raises(ValueError, match="grace_seconds"):
        discovery_config.Config(
            resource=RESOURCE, cluster_role="r", subject_name="a", subject_namespace="b", grace_seconds=0
        )


def test_the_managed_selector_names_both_labels() -> None:
    assert CONFIG.managed_selector == (
        "app.kubernetes.io/managed-by=namespace-discovery,discovery.toolhive.stacklok.dev/owner=main"
    )


def test_unlabelling_opens_a_decision_span_with_the_draining_write_under_it(
    world: World, exporter: InMemorySpanExporter
) -> None:
    grant_and_confirm(world)
    exporter.clear()
    world.namespace("team-a")
    world.converge()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    decide, revoke = spans["discovery.decide"], spans["discovery.revoke"]
    assert decide.attributes is not None and revoke.attributes is not None
    assert decide.attributes["discovery.decision.member"] is False
    assert decide.attributes["discovery.decision.reason"] == "NotSelected"
    assert revoke.attributes["discovery.action"] == "MarkDraining"
    assert revoke.parent is not None and revoke.parent.span_id == decide.context.span_id
    # The final revoke, passes later, still belongs to the decision that started the drain.
    world.clock.now = START + timedelta(seconds=30)
    exporter.clear()
    world.converge()
    final = [span for span in exporter.get_finished_spans() if span.name == "discovery.revoke"]
    assert [span.attributes["discovery.action"] for span in final if span.attributes] == ["Revoke"]
    assert final[0].parent is not None and final[0].parent.span_id == decide.context.span_id


def test_a_failed_write_is_recorded_on_its_span(world: World, exporter: InMemorySpanExporter) -> None:
    world.namespace("team-a", **{LABEL: "true"})
    world.api.failures[("create", "rolebindings")] = kube.ApiError(500, {"reason": "InternalError"})
    world.converge()
    grant = next(span for span in exporter.get_finished_spans() if span.name == "discovery.grant")
    assert grant.status.status_code.name == "ERROR"
    assert grant.attributes is not None and grant.attributes["error.type"] == "500"


def test_a_restarted_controller_over_a_converged_world_writes_logs_and_traces_nothing_per_namespace(
    world: World, exporter: InMemorySpanExporter
) -> None:
    grant_and_confirm(world)
    exporter.clear()
    world.controller = controller.Controller(world.controller.ctx)
    world.converge()
    assert world.api.writes() == []
    assert [span.name for span in exporter.get_finished_spans()] == []


def test_an_unparsable_spec_holds_every_grant_and_warns_once_per_generation(world: World) -> None:
    grant_and_confirm(world)
    stored = world.api.objects[("namespacediscoveries", "", "main")]
    stored["spec"] = {"namespaces": ["Not_A_Name"]}
    result = world.converge()
    assert "invalid" in result.held
    assert world.binding("team-a") is not None
    world.converge()
    assert world.events().count(("Warning", "InvalidSpec", "main")) == 1
    assert [call for call in world.api.writes() if call[1] != "events"] == []


class Counting:
    def __init__(self) -> None:
        self.grants = self.revokes = 0
        self.managed: list[int] = []

    def count_grant(self) -> None:
        self.grants += 1

    def count_revoke(self) -> None:
        self.revokes += 1

    def set_managed_namespaces(self, count: int) -> None:
        self.managed.append(count)


def test_the_observer_counts_grants_revokes_and_members_every_pass(world: World) -> None:
    observer = Counting()
    world.controller = controller.Controller(dataclasses.replace(world.controller.ctx, observer=observer))
    grant_and_confirm(world)
    world.namespace("team-a")
    world.converge()
    world.clock.now = START + timedelta(seconds=30)
    world.converge()
    assert (observer.grants, observer.revokes) == (1, 1)
    assert observer.managed == [1, 1, 0, 0]


def terminate(world: World, namespace: str, *finalizers: str) -> None:
    body = world.api.objects[("namespaces", "", namespace)]
    body["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    listed = ", ".join(f"{name} in 1 resource instances" for name in finalizers)
    body["status"] = {
        "phase": "Terminating",
        "conditions": [
            {
                "type": "NamespaceFinalizersRemaining",
                "status": "True" if finalizers else "False",
                "message": f"Some content in the namespace has finalizers remaining: {listed}",
            }
        ],
    }


def test_a_terminating_namespace_keeps_its_grant_past_grace_while_others_finalizers_remain(
    world: World,
) -> None:
    grant_and_confirm(world)
    terminate(world, "team-a", constants.GRANT_FINALIZER, "example.com/grantee-finalizer")
    world.converge()
    world.clock.now = START + timedelta(seconds=300)
    result = world.converge()
    assert world.binding("team-a") is not None
    assert world.status["draining"] == ["team-a"]
    assert result.requeue_after is None  # the namespace's own updates wake discovery, not a timer
    terminate(world, "team-a", constants.GRANT_FINALIZER)
    world.converge()
    assert world.binding("team-a") is None


def test_the_grantee_release_still_revokes_a_held_terminating_namespace(world: World) -> None:
    grant_and_confirm(world)
    terminate(world, "team-a", constants.GRANT_FINALIZER, "example.com/other")
    world.converge()
    binding = world.binding("team-a")
    assert binding is not None
    binding["metadata"]["annotations"][constants.RELEASED_ANNOTATION] = "true"
    world.api.put("rolebindings", binding)
    world.converge()
    assert world.binding("team-a") is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param(
            {
                "type": "NamespaceFinalizersRemaining",
                "status": "True",
                "message": "Some content in the namespace has finalizers remaining: a.io/x in 1 resource "
                "instances, b.io/y in 2 resource instances",
            },
            {"a.io/x", "b.io/y"},
            id="finalizers listed by the namespace controller are read",
        ),
        pytest.param(
            {"type": "NamespaceFinalizersRemaining", "status": "False", "message": "All finished"},
            set(),
            id="a False condition means none remain",
        ),
        pytest.param({"type": "NamespaceContentRemaining", "status": "True"}, set(), id="other conditions"),
    ],
)
def test_remaining_finalizers_are_read_from_the_namespace_condition(
    condition: dict[str, str], expected: set[str]
) -> None:
    assert policy.remaining_finalizers({"conditions": [condition]}) == expected

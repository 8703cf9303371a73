"""A pass applies one MCPServer's children in concurrent waves, after its finalizer, reporting partial work.

A fake API records when each request starts and ends (every request yields to the event loop, so requests
sent together overlap), which shows what was in flight at once without timing anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discovery import kube
from toolhive import apply, constants, reconcile, resources
from toolhive.builders.inputs import BuildConfig

NAMESPACE = "team-a"


class FakeApi:
    """Answers applies, patches and creates; `failing` names the requests that answer 500."""

    def __init__(self, *, failing: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.order: list[str] = []  # request names, in the order they were sent
        self.finished: list[str] = []
        self.alongside: dict[str, set[str]] = {}  # request -> requests still in flight when it started
        self._in_flight: set[str] = set()
        self.stored: dict[str, kube.Body] = {}

    async def _call(self, what: str) -> None:
        self.order.append(what)
        self.alongside[what] = set(self._in_flight)
        self._in_flight.add(what)
        for _ in range(3):
            await asyncio.sleep(0)
        self._in_flight.discard(what)
        self.finished.append(what)
        if what in self.failing:
            raise kube.ApiError(500, {"reason": "InternalError", "message": f"{what} failed"})

    async def apply(self, res: kube.Resource, manifest: kube.Body, *, field_manager: str) -> kube.Body:
        what = f"{manifest['kind']}/{manifest['metadata']['name']}"
        await self._call(what)
        self.stored[what] = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "7"}}
        return self.stored[what]

    async def get_or_none(self, res: kube.Resource, name: str, *, namespace: str) -> kube.Body | None:
        await self._call(f"get {res.kind}/{name}")
        return self.stored.get(f"{res.kind}/{name}")

    async def patch(self, res: kube.Resource, name: str, patch: Any, **options: Any) -> kube.Body:
        if options.get("subresource") == "status":
            await self._call("status")
            return {}
        await self._call("finalizer")
        body = server()
        body["metadata"]["finalizers"] = [patch[1]["value"][-1]]
        return body

    async def create(self, res: kube.Resource, body: kube.Body, *, namespace: str) -> kube.Body:
        await self._call(f"event {body['reason']}: {body['message']}")
        return body


def server() -> kube.Body:
    return {
        "apiVersion": resources.MCPSERVERS.api_version,
        "kind": "MCPServer",
        "metadata": {
            "name": "fetch",
            "namespace": NAMESPACE,
            "uid": "0000-1111",
            "generation": 1,
            "resourceVersion": "3",
        },
        "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:1.0.1", "transport": "stdio"},
    }


def context(api: FakeApi) -> reconcile.Context:
    def lookup(res: kube.Resource, *, namespace: str, name: str) -> kube.Body | None:
        return None

    return reconcile.Context(
        api=api,  # type: ignore[arg-type]
        applier=apply.Applier(api),  # type: ignore[arg-type]
        lookup=lookup,
        build=BuildConfig(),
    )


CHILDREN = (
    "ServiceAccount/fetch-proxy-runner",
    "ServiceAccount/fetch-sa",
    "Role/fetch-proxy-runner",
    "ConfigMap/fetch-runconfig",
    "Service/mcp-fetch-proxy",
)


def test_a_first_pass_sets_the_finalizer_then_applies_in_three_concurrent_waves() -> None:
    api = FakeApi()
    outcome, result = asyncio.run(reconcile.reconcile(server(), ctx=context(api)))
    assert (outcome, result.retry) == ("changed", False)
    assert api.order[0] == "finalizer" and api.alongside["finalizer"] == set()
    # Wave 1: the independent objects all in flight together, each started once the finalizer was set.
    assert set(api.order[1:6]) == set(CHILDREN)
    assert api.alongside[api.order[5]] == set(api.order[1:5])
    # The RoleBinding once its Role exists, the Deployment once everything it needs exists.
    assert api.order[6:8] == ["RoleBinding/fetch-proxy-runner", "Deployment/fetch"]
    assert api.alongside["RoleBinding/fetch-proxy-runner"] == set()
    assert api.alongside["Deployment/fetch"] == set()
    # Status and the one Event go together at the end.
    assert set(api.order[8:]) == {
        "status",
        "event Created: created "
        + ", ".join([*CHILDREN, "RoleBinding/fetch-proxy-runner", "Deployment/fetch"]),
    }
    assert len(api.order) == 10


def test_a_failing_object_lets_its_wave_finish_reports_what_changed_and_stops_before_the_next_wave() -> None:
    api = FakeApi(failing=frozenset({"Role/fetch-proxy-runner"}))
    with pytest.raises(kube.ApiError, match="Role/fetch-proxy-runner failed"):
        asyncio.run(reconcile.reconcile(server(), ctx=context(api)))
    assert set(api.finished[1:6]) == set(CHILDREN)
    created = [name for name in CHILDREN if name != "Role/fetch-proxy-runner"]
    assert api.order[6:] == ["event Created: created " + ", ".join(created)]
    assert "RoleBinding/fetch-proxy-runner" not in api.order and "status" not in api.order


def test_the_first_status_is_judged_from_the_deployment_just_applied() -> None:
    api = FakeApi()
    ctx = context(api)
    statuses: list[kube.Body] = []

    async def set_status(body: kube.Body, status: kube.Body) -> bool:
        statuses.append(status)
        return True

    ctx.applier.set_status = set_status  # type: ignore[method-assign]
    asyncio.run(reconcile.reconcile(server(), ctx=ctx))
    (status,) = statuses
    # Not "creating the proxy runner": the Deployment's own watch event then finds nothing to change.
    assert (status["phase"], status["message"]) == ("Pending", "waiting for the proxy runner to become ready")
    assert status["readyReplicas"] == 0


def test_a_pass_racing_the_watch_events_of_its_own_writes_reads_instead_of_writing_again() -> None:
    api = FakeApi()
    ctx = context(api)  # its cache never sees anything: every watch event is late
    asyncio.run(reconcile.reconcile(server(), ctx=ctx))
    api.order.clear()
    body = server()
    body["metadata"]["finalizers"] = [constants.FINALIZER]
    outcome, _ = asyncio.run(reconcile.reconcile(body, ctx=ctx))  # still no status in the cached copy
    assert outcome == "unchanged"
    # Nor its status: the cached copy is the one its last status write was based on.
    assert sorted(api.order) == ["get Deployment/fetch", "get Service/mcp-fetch-proxy"]


# --- the resync's snapshot -----------------------------------------------------------------------


def listed(kind: str, name: str, version: str) -> kube.Body:
    return {"kind": kind, "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": version}}


def test_a_snapshot_hands_each_listed_version_to_one_pass_and_says_what_it_cannot_know() -> None:
    snapshots = reconcile.Snapshots()
    assert snapshots.take(NAMESPACE, "Role", "a", recorded=True) is apply.UNKNOWN  # nothing listed yet
    snapshots.put(NAMESPACE, [listed("Role", "a", "5"), listed("ConfigMap", "a", "6")])
    assert snapshots.take(NAMESPACE, "Role", "a", recorded=True) == {
        "metadata": {"name": "a", "namespace": NAMESPACE, "resourceVersion": "5"}
    }
    assert snapshots.take(NAMESPACE, "Role", "a", recorded=True) is apply.UNKNOWN  # taken: read again
    # Missing from the LIST: absent, unless this process applied it (created since, or unlabelled).
    assert snapshots.take(NAMESPACE, "Role", "b", recorded=False) is None
    assert snapshots.take(NAMESPACE, "Role", "b", recorded=True) is apply.UNKNOWN
    assert len(snapshots) == 1
    snapshots.drop(NAMESPACE)
    assert len(snapshots) == 0

"""The apply layer writes only when something differs, and remembers what it applied."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from discovery import kube
from toolhive import apply, constants

Body = dict[str, Any]


class FakeApi:
    """Just enough of discovery.kube.Api for the applier: an in-memory store that counts calls."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}
        self.calls: list[str] = []
        self.version = 0

    def _store(self, obj: Body) -> Body:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        meta = stored["metadata"]
        self.objects[(stored["kind"], meta.get("namespace", ""), meta["name"])] = stored
        return copy.deepcopy(stored)

    async def get_or_none(
        self, res: kube.Resource, name: str, *, namespace: str | None = None
    ) -> Body | None:
        self.calls.append("get")
        found = self.objects.get((res.kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    async def apply(self, res: kube.Resource, body: Body, *, field_manager: str) -> Body:
        self.calls.append("apply")
        assert field_manager == constants.FIELD_MANAGER
        meta = body["metadata"]
        current = self.objects.get((res.kind, meta.get("namespace", ""), meta["name"]), {})
        merged = {**current, **copy.deepcopy(body)}
        merged.setdefault("spec", {}).setdefault("defaultedByServer", True)
        return self._store(merged)

    async def patch(self, res: kube.Resource, name: str, patch: Any, **kwargs: Any) -> Body:
        self.calls.append(f"patch:{kwargs.get('subresource') or kwargs.get('patch_type') or 'merge'}")
        return {"metadata": {"name": name, "resourceVersion": "x"}}


def configmap(data: str = "a") -> Body:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "github-runconfig", "namespace": "team-a", "labels": {"toolhive": "true"}},
        "data": {"runconfig.json": data},
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


def test_a_missing_object_is_applied_once(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    outcome = run(applier.ensure(configmap()))
    assert outcome.changed and fake.calls == ["get", "apply"]
    assert applier.writes["apply"] == 1


def test_reapplying_the_same_manifest_reads_and_writes_nothing(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    run(applier.ensure(configmap()))
    fake.calls.clear()
    outcome = run(applier.ensure(configmap()))
    assert not outcome.changed and fake.calls == []


def test_an_observed_object_at_the_applied_version_needs_nothing(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    created = run(applier.ensure(configmap())).object
    fake.calls.clear()
    assert not run(applier.ensure(configmap(), observed=created)).changed
    assert fake.calls == []


def test_a_fresh_applier_finds_a_correct_object_and_writes_nothing(fake: FakeApi) -> None:
    run(apply.Applier(fake).ensure(configmap()))  # type: ignore[arg-type]
    restarted = apply.Applier(fake)  # type: ignore[arg-type]
    fake.calls.clear()
    outcome = run(restarted.ensure(configmap()))
    assert not outcome.changed and fake.calls == ["get"]


def test_drift_in_an_observed_object_is_repaired(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    created = run(applier.ensure(configmap())).object
    assert created is not None
    edited = copy.deepcopy(created)
    edited["data"]["runconfig.json"] = "tampered"
    edited["metadata"]["resourceVersion"] = "999"
    assert run(applier.ensure(configmap(), observed=edited)).changed


def test_a_changed_manifest_is_applied_without_reading_first(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    run(applier.ensure(configmap("a")))
    fake.calls.clear()
    assert run(applier.ensure(configmap("b"))).changed
    assert applier.writes["apply"] == 2
    assert fake.calls == ["apply"]


def deployment(**meta: Any) -> Body:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "github", "namespace": "team-a", "labels": {"toolhive": "true"}, **meta},
        "spec": {"replicas": 1},
    }


def slim(obj: Body, *, version: str, generation: int, labels: dict[str, str] | None = None) -> Body:
    """What the multiplexer caches of a watched child after the server moved it on."""
    meta = obj["metadata"]
    labels = meta["labels"] if labels is None else labels
    return {
        "metadata": {**meta, "resourceVersion": version, "generation": generation, "labels": labels},
        "status": {"readyReplicas": 1},
    }


class GenerationalApi(FakeApi):
    """Stamps metadata.generation 1 on what it stores, as the API server does for Deployments."""

    def _store(self, obj: Body) -> Body:
        obj = copy.deepcopy(obj)
        obj["metadata"]["generation"] = 1
        return super()._store(obj)


def test_a_watched_child_whose_status_alone_moved_is_confirmed_without_a_read() -> None:
    fake = GenerationalApi()
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    created = run(applier.ensure(deployment(), observed=None))
    fake.calls.clear()
    moved = slim(created.object, version="50", generation=1)
    assert not run(applier.ensure(deployment(), observed=moved, partial=True)).changed
    assert fake.calls == []


@pytest.mark.parametrize(
    ("generation", "labels", "annotated"),
    [
        pytest.param(2, None, False, id="a new generation (spec edited)"),
        pytest.param(1, {"toolhive": "no"}, False, id="an edited label"),
        pytest.param(1, None, True, id="a manifest with annotations, which slim copies lack"),
    ],
)
def test_a_watched_child_that_may_have_drifted_is_read_in_full(
    generation: int, labels: dict[str, str] | None, annotated: bool
) -> None:
    fake = GenerationalApi()
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    manifest = deployment(annotations={"a": "1"}) if annotated else deployment()
    created = run(applier.ensure(manifest, observed=None))
    fake.calls.clear()
    moved = slim(created.object, version="50", generation=generation, labels=labels)
    run(applier.ensure(manifest, observed=moved, partial=True))
    assert fake.calls[0] == "get"


def test_status_is_written_only_when_it_differs(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    server = {"metadata": {"name": "s", "namespace": "n"}, "status": {"phase": "Ready"}}
    assert not run(applier.set_status(server, {"phase": "Ready"}))
    assert run(applier.set_status(server, {"phase": "Pending"}))
    assert fake.calls == ["patch:status"]


def test_a_copy_that_has_not_caught_up_with_our_status_write_is_not_written_again(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    server = {"metadata": {"name": "s", "namespace": "n", "resourceVersion": "4"}}
    assert run(applier.set_status(server, {"phase": "Pending"}))
    assert not run(applier.set_status(server, {"phase": "Pending"}))  # still the copy at version 4
    assert run(applier.set_status(server, {"phase": "Ready"}))  # something new to say
    moved_on = {"metadata": {"name": "s", "namespace": "n", "resourceVersion": "9"}, "status": {}}
    assert run(applier.set_status(moved_on, {"phase": "Ready"}))  # a newer copy lost it: written
    assert fake.calls == ["patch:status"] * 3


def test_the_written_status_is_forgotten_once_a_newer_copy_is_seen(fake: FakeApi) -> None:
    applier = apply.Applier(fake)  # type: ignore[arg-type]
    server = {"metadata": {"name": "s", "namespace": "n", "resourceVersion": "4"}}
    run(applier.set_status(server, {"phase": "Pending", "conditions": [{"type": "Ready"}]}))
    assert applier.observed_status(server) == {"phase": "Pending", "conditions": [{"type": "Ready"}]}
    applier.observed_status(server)["phase"] = "mutated"  # each caller gets its own copy
    assert applier.observed_status(server)["phase"] == "Pending"
    caught_up = {
        "metadata": {"name": "s", "namespace": "n", "resourceVersion": "5"},
        "status": {"phase": "Y"},
    }

    assert applier.observed_status(caught_up) == {"phase": "Y"}
    assert applier.observed_status(server) == {}  # nothing kept for writes the cache has caught up with


def test_the_bounded_map_evicts_the_least_recently_used_entry() -> None:
    lru: apply.Lru[str, int] = apply.Lru(2)
    lru["a"], lru["b"] = 1, 2
    assert lru.get("a") == 1  # "a" is now the most recently used
    lru["c"] = 3
    assert list(lru) == ["a", "c"] and "b" not in lru and len(lru) == 2
    lru["a"] = 4  # replacing refreshes too
    lru["d"] = 5
    assert list(lru) == ["a", "d"] and lru.pop("a") == 4 and lru.pop("missing") is None


def test_a_full_bounded_map_evicts_its_least_recently_used_sixty_fourth_at_once() -> None:
    lru: apply.Lru[int, int] = apply.Lru(128)
    for key in range(128):
        lru[key] = key
    assert lru.get(0) == 0  # refreshed: no longer the oldest
    lru[128] = 128
    assert 1 not in lru and 2 not in lru  # the two least recently used (128 // 64) made room
    assert 0 in lru and 3 in lru and 128 in lru and len(lru) == 127


@pytest.mark.parametrize(
    ("desired", "observed", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1, "b": 2}, True, id="server-added fields are fine"),
        pytest.param({"a": 1}, {"a": 2}, False, id="a changed value is drift"),
        pytest.param({"a": {"b": 1}}, {"a": {}}, False, id="a missing nested field is drift"),
        pytest.param({"l": [{"n": 1}]}, {"l": [{"n": 1, "d": 0}]}, True, id="list items compare as subsets"),
        pytest.param({"l": [1]}, {"l": [1, 2]}, False, id="an extra list item is drift"),
        pytest.param({"a": "1"}, {"a": 1}, False, id="types matter"),
    ],
)
def test_is_subset(desired: Any, observed: Any, expected: bool) -> None:
    assert apply.is_subset(desired, observed) is expected

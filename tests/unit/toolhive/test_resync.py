"""The periodic resync: spread over its period one namespace at a time, one labelled LIST per unwatched kind.

A fake multiplexer and a fake sleep stand in for time: the test reads which sleeps the resync asked for
and what it listed and queued in between, without waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discovery import kube
from toolhive import apply, operator, reconcile
from toolhive.builders.inputs import BuildConfig
from toolhive.workqueue import Trigger


class FakeQueue:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def add(self, key: tuple[str, str], trigger: Trigger | None = None) -> None:
        assert trigger is not None
        self.log.append(("queue", key, trigger.reason))


class FakeMux:
    def __init__(self, servers: dict[str | None, list[tuple[str, str]]], log: list[Any]) -> None:
        self.servers = servers
        self.queue = FakeQueue(log)

    @property
    def namespaces(self) -> frozenset[str | None]:
        return frozenset(self.servers)

    def mcpservers(self, namespace: str | None) -> list[kube.Body]:
        return [{"metadata": {"namespace": ns, "name": name}} for ns, name in self.servers.get(namespace, [])]


class FakeApi:
    def __init__(self, log: list[Any], *, failing: bool = False) -> None:
        self.log = log
        self.failing = failing

    async def list(
        self, res: kube.Resource, *, namespace: str, label_selector: str
    ) -> tuple[list[kube.Body], str]:
        self.log.append(("list", namespace, res.plural, label_selector))
        if self.failing:
            raise kube.ApiError(403, {"reason": "Forbidden"})
        meta = {"name": f"{namespace}-x", "namespace": namespace, "resourceVersion": "9"}
        return [{"kind": res.kind, "metadata": meta}], "1"


class Stop(Exception):
    pass


def run_resync(
    mux: FakeMux, api: FakeApi, log: list[Any], *, period: float, sleeps: int
) -> reconcile.Context:
    ctx = reconcile.Context(
        api=api,  # type: ignore[arg-type]
        applier=apply.Applier(api),  # type: ignore[arg-type]
        lookup=lambda *a, **k: None,
        build=BuildConfig(),
    )

    async def sleep(seconds: float) -> None:
        log.append(("sleep", seconds))
        if sum(1 for entry in log if entry[0] == "sleep") > sleeps:  # the one after `sleeps` stops it
            raise Stop

    with pytest.raises(Stop):
        asyncio.run(operator._resync(mux, ctx=ctx, period=period, sleep=sleep))  # type: ignore[arg-type]
    return ctx


def test_each_namespace_gets_its_turn_spread_evenly_over_the_period_after_one_labelled_list_per_kind() -> (
    None
):
    log: list[Any] = []
    mux = FakeMux({"a": [("a", "s1"), ("a", "s2")], "b": [("b", "s1")], "c": []}, log)
    ctx = run_resync(mux, FakeApi(log), log, period=60.0, sleeps=2)
    assert log[0] == ("sleep", 60.0)  # nothing at start: the informers' first listing queued everything
    lists_a = [("list", "a", plural, "toolhive=true") for plural in ("serviceaccounts", "roles")]
    assert log[1:3] == lists_a
    assert [entry[2] for entry in log[1:5]] == ["serviceaccounts", "roles", "rolebindings", "configmaps"]
    assert log[5:7] == [("queue", ("a", "s1"), "resync"), ("queue", ("a", "s2"), "resync")]
    # Two namespaces hold servers (an empty one is never listed): one turn every 30 s.
    assert log[7] == ("sleep", 30.0)
    assert [entry[1] for entry in log[8:12]] == ["b"] * 4
    assert log[12:] == [("queue", ("b", "s1"), "resync"), ("sleep", 30.0)]
    assert len(ctx.snapshots) == 8  # one listed object per kind and namespace, until passes take them


def test_cluster_scope_is_spread_by_the_servers_own_namespaces() -> None:
    log: list[Any] = []
    mux = FakeMux({None: [("a", "s1"), ("b", "s1"), ("b", "s2")]}, log)
    run_resync(mux, FakeApi(log), log, period=10.0, sleeps=2)
    assert [entry[1] for entry in log if entry[0] == "list"] == ["a"] * 4 + ["b"] * 4
    assert [entry[1] for entry in log if entry[0] == "sleep"] == [10.0, 5.0, 5.0]


def test_a_failed_list_leaves_no_snapshot_and_still_queues_the_servers() -> None:
    log: list[Any] = []
    mux = FakeMux({"a": [("a", "s1")]}, log)
    ctx = run_resync(mux, FakeApi(log, failing=True), log, period=10.0, sleeps=1)
    assert ("queue", ("a", "s1"), "resync") in log
    assert len(ctx.snapshots) == 0
    assert ctx.snapshots.take("a", "Role", "a-x", recorded=False) is apply.UNKNOWN  # read by name instead

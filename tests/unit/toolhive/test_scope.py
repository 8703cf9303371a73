"""Following membership: each namespace is handled on its own, so one failing never delays the others.

`DiscoveryScope._converge` with fake collaborators (no API): a namespace whose release or acknowledgement
fails is retried on the next pass, the other draining namespaces are released and acknowledged at once,
and nothing that succeeded is redone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discovery import kube
from toolhive import scope, settings


class Fakes:
    def __init__(self, *, served: set[str], failing: dict[str, str]) -> None:
        self.served = set(served)
        self.failing = dict(failing)  # namespace -> step that raises ("release" or "acknowledge")
        self.calls: list[tuple[str, str]] = []

    async def serve(self, namespace: str, link: object) -> None:
        self.calls.append(("serve", namespace))
        self.served.add(namespace)

    async def release(self, namespace: str) -> None:
        self.calls.append(("release", namespace))
        if self.failing.get(namespace) == "release":
            raise kube.ApiError(500, {"message": "injected"})
        self.served.discard(namespace)

    async def acknowledge(self, namespace: str) -> bool:
        self.calls.append(("acknowledge", namespace))
        if self.failing.get(namespace) == "acknowledge":
            raise kube.ApiError(503, {"message": "injected"})
        return True


class NoGrants:
    async def get_or_none(self, *args: Any, **kwargs: Any) -> None:
        return None


def make_scope(fakes: Fakes) -> scope.DiscoveryScope:
    return scope.DiscoveryScope(
        NoGrants(),  # type: ignore[arg-type]
        config=settings.DiscoverySettings(enabled=True),
        serve=fakes.serve,
        release=fakes.release,
        acknowledge=fakes.acknowledge,
        link_for_grant=lambda grant: None,
        served=lambda: frozenset(fakes.served),
    )


def membership(*, members: list[str], draining: list[str]) -> scope.Membership:
    return scope.Membership({"status": {"members": members, "draining": draining}})


@pytest.mark.parametrize(
    "step", ["release", "acknowledge"], ids=["a failing release", "a failing acknowledgement"]
)
def test_one_failing_namespace_does_not_hold_up_the_others(step: str) -> None:
    fakes = Fakes(served={"a", "b", "c"}, failing={"a": step})
    follower = make_scope(fakes)
    change = membership(members=["new"], draining=["a", "b", "c"])

    with pytest.raises(kube.ApiError):
        asyncio.run(follower._converge(change))
    for namespace in ("b", "c"):
        assert ("release", namespace) in fakes.calls and ("acknowledge", namespace) in fakes.calls
    assert ("serve", "new") in fakes.calls
    if step == "release":
        assert ("acknowledge", "a") not in fakes.calls, "never acknowledged before it was released"

    fakes.failing.clear()
    fakes.calls.clear()
    asyncio.run(follower._converge(change))
    expected = [("acknowledge", "a")] if step == "acknowledge" else [("release", "a"), ("acknowledge", "a")]
    assert fakes.calls == expected, "only what failed is redone"

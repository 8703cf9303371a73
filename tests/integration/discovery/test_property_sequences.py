"""Property: after any sequence of label changes, namespace creations and deletions and discovery restarts,
the managed RoleBindings are exactly the member set (and the published status agrees).

Each example works on fresh namespaces under a label key only this test uses; one discovery process serves
all examples (restarted when a step says so). Bounded: up to 8 steps, three namespace slots, 25 examples
(5 against a real cluster); about 5 s on the loopback API.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import cluster as cluster_mod
from tests.integration import discovery_harness, harness

SLOTS = 3
LABEL_VALUES = ("on", "off", None)


@dataclasses.dataclass
class Served:
    discovery: discovery_harness.Discovery
    namespaces: discovery_harness.Namespaces
    label_key: str


@pytest.fixture(scope="module")
def served(admin: harness.Admin, discovery_rbac: discovery_harness.DiscoveryRbac) -> Iterator[Served]:
    label_key = f"discovery-property.example.com/{secrets.token_hex(4)}"
    found = discovery_harness.Discovery(
        admin, discovery_rbac, spec={"selectors": [discovery_harness.selector(label_key)]}, grace_seconds=0.5
    )
    namespaces = discovery_harness.Namespaces(admin)
    with discovery_harness.serving(found):
        try:
            yield Served(found, namespaces, label_key)
        finally:
            namespaces.cleanup()


label_step = st.tuples(st.just("label"), st.integers(0, SLOTS - 1), st.sampled_from(LABEL_VALUES))
create_step = st.tuples(st.just("create"), st.integers(0, SLOTS - 1), st.sampled_from(LABEL_VALUES))
delete_step = st.tuples(st.just("delete"), st.integers(0, SLOTS - 1), st.none())
restart_step = st.tuples(st.just("restart"), st.just(0), st.none())
steps = st.lists(st.one_of(label_step, create_step, delete_step, restart_step), min_size=1, max_size=8)
initial = st.lists(st.sampled_from(LABEL_VALUES), min_size=SLOTS, max_size=SLOTS)


def examples() -> int:
    return 5 if os.environ.get(cluster_mod.ENV_KUBECONFIG) else 25


@settings(max_examples=examples(), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=initial, steps=steps)
def test_managed_bindings_equal_the_member_set_after_any_sequence(
    served: Served, initial: list[str | None], steps: list[tuple[str, int, str | None]]
) -> None:
    key, namespaces, found = served.label_key, served.namespaces, served.discovery

    def labels(value: str | None) -> dict[str, str]:
        return {key: value} if value is not None else {}

    # slot -> (name, label value) for live namespaces; every name ever used in this example.
    live: dict[int, tuple[str, str | None]] = {}
    used: set[str] = set()
    for slot, value in enumerate(initial):
        live[slot] = (namespaces.create("p", **labels(value)), value)
        used.add(live[slot][0])
    for step, slot, value in steps:
        if step == "label" and slot in live:
            name = live[slot][0]
            namespaces.label(name, **{key: value})
            live[slot] = (name, value)
        elif step == "create" and slot not in live:
            live[slot] = (namespaces.create("p", **labels(value)), value)
            used.add(live[slot][0])
        elif step == "delete" and slot in live:
            namespaces.delete(live.pop(slot)[0])
        elif step == "restart":
            found.restart()
    members = {name for name, value in live.values() if value == "on"}
    found.wait_converged(members, within=used, timeout=30)
    deleted = used - {name for name, _ in live.values()}
    cluster_mod.poll(
        lambda: not any(namespaces.exists(name) for name in deleted),
        timeout=30,
        message="deleted namespaces gone",
    )

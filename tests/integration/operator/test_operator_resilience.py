"""Zero-write steady state, drift repair, and convergence through injected API faults and dropped watches."""

from __future__ import annotations

import pytest

from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.operator.conftest import OperatorFactory
from toolhive.testing import LoopbackApi


def ready(admin: harness.Admin, namespace: str, name: str) -> None:
    cluster_mod.poll(
        lambda: admin.status(namespace, name).get("phase") == "Ready", timeout=20, message=f"{name} Ready"
    )


@pytest.mark.loopback_only("counts writes in the loopback API's request log")
def test_a_no_op_resync_makes_zero_writes(
    admin: harness.Admin, loopback: LoopbackApi, namespace: str, start_operator: OperatorFactory
) -> None:
    running = start_operator([namespace], operator={"resync_seconds": 0.2})
    for name, transport in (("a", "stdio"), ("b", "sse"), ("c", "streamable-http")):
        admin.create_mcpserver(namespace, name, transport=transport)
    for name in ("a", "b", "c"):
        ready(admin, namespace, name)
    # Let the first passes settle, then watch several resyncs go by.
    cluster_mod.poll(lambda: loopback.requests.writes(user=running.user) > 0, timeout=5)
    settle = cluster_mod.poll
    settle(lambda: _quiet(loopback, running.user), timeout=10, message="operator settled")
    loopback.requests.reset()
    cluster_mod.poll(
        lambda: loopback.requests.count("list", user=running.user, namespace=namespace) >= 4 * 2,
        timeout=10,
        message="two resyncs listed every unwatched kind",
    )
    assert loopback.requests.writes(user=running.user) == 0, [
        (r.verb, r.resource, r.name) for r in loopback.requests if r.user == running.user and r.is_write
    ]
    # One labelled LIST per kind and resync verifies them all: no object is read by name.
    assert loopback.requests.count("get", user=running.user, namespace=namespace) == 0
    lists = [r for r in loopback.requests if r.user == running.user and r.verb == "list"]
    assert {r.resource for r in lists} == {"serviceaccounts", "roles", "rolebindings", "configmaps"}
    assert all("labelSelector=toolhive%3Dtrue" in r.query for r in lists), [r.query for r in lists]


def _quiet(loopback: LoopbackApi, user: str) -> bool:
    """No operator write in the requests logged since the last check."""
    writes = loopback.requests.writes(user=user)
    loopback.requests.reset()
    return writes == 0


def test_deleted_and_edited_objects_are_repaired(
    admin: harness.Admin, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace], operator={"resync_seconds": 0.5})
    admin.create_mcpserver(namespace, "github", transport="stdio")
    ready(admin, namespace, "github") if admin.cluster.is_loopback else None
    cluster_mod.poll(
        lambda: admin.exists(admin.apps.read_namespaced_deployment, "github", namespace), timeout=20
    )

    # A watched kind: repaired from its watch event.
    admin.apps.delete_namespaced_deployment("github", namespace)
    cluster_mod.poll(
        lambda: (
            (d := admin.read(admin.apps.read_namespaced_deployment, "github", namespace))
            and not d["metadata"].get("deletionTimestamp")
        ),
        timeout=20,
        message="Deployment recreated",
    )
    admin.core.patch_namespaced_service("mcp-github-proxy", namespace, {"spec": {"sessionAffinity": "None"}})
    cluster_mod.poll(
        lambda: (
            admin.read(admin.core.read_namespaced_service, "mcp-github-proxy", namespace)["spec"][
                "sessionAffinity"
            ]
            == "ClientIP"
        ),
        timeout=20,
        message="Service edit reverted",
    )
    # Unwatched kinds: repaired by the periodic resync.
    admin.core.delete_namespaced_service_account("github-sa", namespace)
    admin.rbac.patch_namespaced_role("github-proxy-runner", namespace, {"rules": []})
    cluster_mod.poll(
        lambda: admin.exists(admin.core.read_namespaced_service_account, "github-sa", namespace),
        timeout=20,
        message="ServiceAccount recreated",
    )
    cluster_mod.poll(
        lambda: (
            len(admin.read(admin.rbac.read_namespaced_role, "github-proxy-runner", namespace)["rules"]) > 0
        ),
        timeout=20,
        message="Role rules restored",
    )


@pytest.mark.loopback_only("injects API faults and drops watches")
@pytest.mark.parametrize(
    ("status", "verb"),
    [
        pytest.param(409, "patch", id="a write conflict is retried"),
        pytest.param(429, "patch", id="throttling honours Retry-After"),
        pytest.param(500, "patch", id="a server error is backed off"),
        pytest.param(503, "get", id="an unavailable read is retried"),
    ],
)
def test_injected_faults_are_survived(
    admin: harness.Admin,
    loopback: LoopbackApi,
    namespace: str,
    start_operator: OperatorFactory,
    status: int,
    verb: str,
) -> None:
    running = start_operator([namespace])
    loopback.faults.add(status=status, verb=verb, user=running.user, count=3, retry_after=1)
    try:
        admin.create_mcpserver(namespace, "github", transport="sse")
        ready(admin, namespace, "github")
    finally:
        loopback.faults.clear()
    assert loopback.requests.count(user=running.user) > 0


@pytest.mark.loopback_only("drops watch connections")
def test_dropped_watches_resume_and_miss_nothing(
    admin: harness.Admin, loopback: LoopbackApi, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    admin.create_mcpserver(namespace, "first")
    ready(admin, namespace, "first")
    dropped = loopback.faults.drop_watches(path=f"/namespaces/{namespace}/")
    assert dropped >= 4  # MCPServers, Deployments, Services, StatefulSets
    admin.create_mcpserver(namespace, "second")
    ready(admin, namespace, "second")
    admin.apps.delete_namespaced_deployment("first", namespace)
    cluster_mod.poll(
        lambda: admin.exists(admin.apps.read_namespaced_deployment, "first", namespace), timeout=20
    )

"""The invariant checker itself: it passes on a converged install and names each planted violation.

Runs against whatever cluster the session uses (loopback, or TOOLHIVE_TEST_KUBECONFIG): the chart is
installed in discovery mode, one replica of each process converges a small scene, the checker must pass;
then the processes stop and the admin client plants one violation per rule, each of which the checker must
report in a sentence naming the object. A pure test covers the stuck-namespace rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from discovery import constants as dconst
from discovery import kube
from tests import cluster as cluster_mod
from tests.chaos import invariants, soak
from tests.e2e.conftest import Kube, wait_for
from toolhive import constants
from toolhive.testing import install, processes


def check(cluster: cluster_mod.Cluster, target: invariants.Target) -> list[invariants.Violation]:
    async def run() -> list[invariants.Violation]:
        api = await kube.Api.connect(kubeconfig=str(cluster.kubeconfig))
        try:
            return await invariants.check(api, target)
        finally:
            await api.close()
            await asyncio.sleep(0)

    return asyncio.run(run())


def test_the_checker_passes_after_convergence_and_names_every_planted_violation(
    cluster: cluster_mod.Cluster,
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    installation = install_chart(soak.VALUES)
    member = make_namespace("inv-member", labelled=True)
    outsider = make_namespace("inv-outsider")
    kube.create_mcpserver(member, "fetch")
    kube.custom.create_namespaced_custom_object(
        soak.GROUP,
        soak.VERSION,
        member,
        "mcpservers",
        {
            "apiVersion": f"{soak.GROUP}/{soak.VERSION}",
            "kind": "MCPServer",
            "metadata": {"name": "needs-auth"},
            "spec": {"image": "example/mcp:1", "oidcConfigRef": {"name": "idp", "audience": "x"}},
        },
    )
    kube.create_mcpserver(outsider, "fetch")
    started = run_processes(installation)
    target = invariants.Target.from_env(
        installation.env(install.OPERATOR), expect_ready=False, namespaces=frozenset({member, outsider})
    )
    last: list[invariants.Violation] = []

    def holds() -> bool:
        last[:] = check(cluster, target)
        return not last

    wait_for(holds, what=f"invariants hold (last: {last})", started=started, timeout=30)
    failed = kube.mcpserver(member, "needs-auth")
    assert failed is not None and failed["status"]["phase"] == "Failed"
    for process in started.values():
        process.stop()

    # Plant one violation per rule.
    kube.custom.patch_namespaced_custom_object(
        soak.GROUP, soak.VERSION, outsider, "mcpservers", "fetch",
        {"metadata": {"finalizers": [constants.FINALIZER]}},
    )  # fmt: skip
    kube.rbac.create_namespaced_role_binding(
        outsider,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": "toolhive-operator",
                "labels": {
                    dconst.MANAGED_BY_LABEL: dconst.MANAGED_BY_VALUE,
                    dconst.OWNER_LABEL: target.discovery_name,
                },
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "toolhive-operator", "namespace": "x"}],
        },
    )
    kube.apps.patch_namespaced_deployment(
        "fetch", member, {"spec": {"template": {"spec": {"serviceAccountName": "someone-else"}}}}
    )
    kube.custom.patch_namespaced_custom_object(
        soak.GROUP, soak.VERSION, member, "mcpservers", "fetch", {"spec": {"args": ["--changed"]}}
    )
    kube.core.create_namespaced_config_map(
        member,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stray", "labels": {"toolhive": "true", "toolhive-name": "gone"}},
        },
    )

    found = [str(v) for v in check(cluster, target)]
    expected = [
        f"[no-finalizer-outside-members] MCPServer {outsider}/fetch keeps finalizer {constants.FINALIZER}",
        f"[grants-equal-members] namespace {outsider} is not a member but keeps managed RoleBinding "
        "toolhive-operator",
        f"[mcpserver-state] Deployment {member}/fetch differs from its desired state at "
        "spec.template.spec.serviceAccountName",
        f"[mcpserver-state] MCPServer {member}/fetch: status.observedGeneration is 1, but "
        "metadata.generation is 2",
        f"[no-orphans] ConfigMap {member}/stray in member namespace {member} has no owner "
        "(MCPServer gone does not exist)",
    ]
    missing = [sentence for sentence in expected if not any(v.startswith(sentence) for v in found)]
    assert not missing, f"not reported: {missing}\nreported: {found}"

    # Undo what the processes cannot (outside their grant), then restart them so teardown finalizes.
    kube.rbac.delete_namespaced_role_binding("toolhive-operator", outsider)
    kube.custom.patch_namespaced_custom_object(
        soak.GROUP, soak.VERSION, outsider, "mcpservers", "fetch", {"metadata": {"finalizers": None}}
    )
    run_processes(installation)


def test_a_namespace_stuck_terminating_on_our_finalizers_is_reported() -> None:
    terminating = {
        "metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": "Terminating"},
    }
    server = {
        "kind": "MCPServer",
        "metadata": {"name": "fetch", "namespace": "gone", "uid": "u1", "finalizers": [constants.FINALIZER]},
    }
    grant = {
        "kind": "RoleBinding",
        "metadata": {
            "name": "toolhive-operator",
            "namespace": "gone",
            "finalizers": [dconst.GRANT_FINALIZER],
        },
    }
    discovery = {
        "metadata": {"name": "toolhive-operator", "generation": 1},
        "spec": {"selectors": [{"matchLabels": {"team": "x"}}]},
        "status": {"observedGeneration": 1},
    }
    snapshot = invariants.Snapshot(
        namespaces={"gone": terminating},
        discovery=discovery,
        grants=[grant],
        mcpservers=[server],
        labelled=[],
    )
    found = [str(v) for v in invariants.evaluate(snapshot, invariants.Target())]
    assert found == [
        "[grants-equal-members] namespace gone is not a member but keeps managed RoleBinding "
        "toolhive-operator",
        f"[no-finalizer-outside-members] MCPServer gone/fetch keeps finalizer {constants.FINALIZER} although "
        "gone is not a member",
        "[no-stuck-namespace] namespace gone is stuck terminating: RoleBinding toolhive-operator keeps "
        f"finalizer {dconst.GRANT_FINALIZER}",
        "[no-stuck-namespace] namespace gone is stuck terminating: MCPServer fetch keeps finalizer "
        f"{constants.FINALIZER}",
    ]


def test_a_selected_namespace_without_its_grant_is_reported() -> None:
    namespace = {"metadata": {"name": "team-a", "labels": {"team": "x"}}}
    discovery = {
        "metadata": {"name": "toolhive-operator", "generation": 2},
        "spec": {"selectors": [{"matchLabels": {"team": "x"}}]},
        "status": {"observedGeneration": 1, "members": [], "draining": ["team-b"]},
    }
    snapshot = invariants.Snapshot({"team-a": namespace}, discovery, [], [], [])
    found = [str(v) for v in invariants.evaluate(snapshot, invariants.Target())]
    assert found == [
        "[published-membership] NamespaceDiscovery toolhive-operator: status.observedGeneration is 1, but "
        "metadata.generation is 2",
        "[published-membership] NamespaceDiscovery toolhive-operator: status.members misses members "
        "['team-a']",
        "[published-membership] NamespaceDiscovery toolhive-operator: status.draining is ['team-b'] after "
        "quiescence (expected empty)",
        "[grants-equal-members] namespace team-a is a member but has no managed RoleBinding",
    ]

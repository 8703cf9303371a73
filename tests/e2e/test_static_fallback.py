"""Journey 2: `helm install` with a static fallback list, with and without discovery.

The listed namespaces are always served, labelled or not. Without discovery the chart alone renders their
RoleBindings (ToolHive's behaviour) and a labelled namespace outside the list is not served; with discovery
the list's grants are discovery's (one owner each) and labelled namespaces join as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.e2e.conftest import Kube, logs_of, wait_for
from toolhive.testing import install, processes

DISCOVERY_GRANT = "toolhive-operator"
HELM_GRANT = "toolhive-operator-manager-rolebinding"


def values(static: list[str], *, discovery: bool) -> dict[str, Any]:
    rbac: dict[str, Any] = {"scope": "namespace", "allowedNamespaces": static}
    if discovery:
        rbac["discovery"] = {"enabled": True}
    return {"operator": {"rbac": rbac}}


@pytest.mark.parametrize("discovery", [False, True], ids=["static list alone", "static list with discovery"])
def test_the_static_list_is_always_served_and_discovery_adds_labelled_namespaces(
    discovery: bool,
    kube: Kube,
    make_namespace: Callable[..., str],
    install_chart: Callable[[Mapping[str, Any]], install.Installation],
    run_processes: Callable[..., dict[str, processes.Process]],
) -> None:
    staging, production = make_namespace("staging"), make_namespace("production")
    labelled, other = make_namespace("team", labelled=True), make_namespace("other")
    installation = install_chart(values([staging, production], discovery=discovery))
    for namespace in (staging, production, labelled, other):
        kube.create_mcpserver(namespace)
    started = run_processes(installation)
    assert set(started) == (
        {"toolhive-operator", "toolhive-discovery"} if discovery else {"toolhive-operator"}
    )

    for namespace in (staging, production):
        wait_for(lambda n=namespace: kube.deployment(n, "fetch"), what=f"{namespace} served", started=started)
        grants = [kube.rolebinding(namespace, name) for name in (DISCOVERY_GRANT, HELM_GRANT)]
        discovery_grant, helm_grant = grants
        # Exactly one owner per grant: discovery's when it runs, else the chart's (ToolHive's name).
        assert (discovery_grant is not None, helm_grant is not None) == (discovery, not discovery), grants
        owner = (discovery_grant or helm_grant or {})["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        assert owner == ("namespace-discovery" if discovery else "Helm")
    if discovery:
        wait_for(
            lambda: kube.deployment(labelled, "fetch"), what="labelled namespace served", started=started
        )
        # Subset, not equality: other labelled namespaces on a shared cluster are members too.
        members = set(kube.membership()["members"])
        assert {staging, production, labelled} <= members and other not in members, members
    else:
        assert kube.rolebinding(labelled, DISCOVERY_GRANT) is None, "without discovery a label grants nothing"
        assert kube.deployment(labelled, "fetch") is None
    assert kube.deployment(other, "fetch") is None
    assert kube.rolebinding(other, DISCOVERY_GRANT) is None and kube.rolebinding(other, HELM_GRANT) is None
    assert all(p.alive() for p in started.values()), logs_of(started)

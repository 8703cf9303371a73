"""References to objects that do not exist: a missing ServiceAccount and missing Secrets.

- `spec.serviceAccount: does-not-exist`: the operator may read ServiceAccounts, so it checks. The server is
  Pending with `ServiceAccountFound=False` naming the field and one Warning Event; nothing is created (the
  runner's pods would be refused at admission), no write while waiting; creating the account resumes it.
- `spec.secrets` naming a missing Secret: the operator holds no Secret permission on purpose (least
  privilege: it would otherwise read every credential in every member namespace), so it cannot check. It
  passes the reference as a `secretKeyRef`; the MCP server's pod then reports `CreateContainerConfigError`
  (secret not found) in its status and Events, where `kubectl describe pod` shows it.
"""

from __future__ import annotations

import json
import time

import kubernetes
import pytest

from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.bad_input.test_mcpserver_specs import children
from tests.integration.operator.conftest import OperatorFactory


def condition(admin: harness.Admin, namespace: str, name: str, kind: str) -> dict[str, str]:
    conditions = admin.status(namespace, name).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def test_a_missing_service_account_holds_the_server_pending_until_it_exists(
    admin: harness.Admin, namespace: str, cluster: cluster_mod.Cluster, start_operator: OperatorFactory
) -> None:
    running = start_operator([namespace])
    admin.create_mcpserver(namespace, "fetch", transport="sse", serviceAccount="does-not-exist")
    found = cluster_mod.poll(
        lambda: condition(admin, namespace, "fetch", "ServiceAccountFound") or None,
        timeout=20,
        message="ServiceAccountFound condition",
    )
    assert (found["status"], found["reason"]) == ("False", "ServiceAccountNotFound")
    assert "spec.serviceAccount" in found["message"] and "does-not-exist" in found["message"]
    status = admin.status(namespace, "fetch")
    assert status["phase"] == "Pending" and "does-not-exist" in status["message"]
    events = cluster_mod.poll(
        lambda: [
            e
            for e in admin.core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=fetch"
            ).items
            if e.reason == "ServiceAccountNotFound"
        ],
        timeout=10,
        message="a Warning Event",
    )
    assert events[0].type == "Warning"
    assert not any(children(admin, namespace, "fetch").values())
    if cluster.loopback is not None:
        cluster.loopback.requests.reset()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert cluster.loopback.requests.count(writes=True, user=running.user) == 0
            time.sleep(0.1)

    admin.core.create_namespaced_service_account(
        namespace, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "does-not-exist"}}
    )
    # The recheck is periodic (ServiceAccounts are not watched); any edit of the server also triggers one.
    admin.patch_mcpserver(namespace, "fetch", {"metadata": {"annotations": {"example.com/poke": "1"}}})
    cluster_mod.poll(
        lambda: condition(admin, namespace, "fetch", "ServiceAccountFound").get("status") == "True",
        timeout=25,
        message="ServiceAccountFound=True once the account exists",
    )
    built = cluster_mod.poll(
        lambda: (objects := children(admin, namespace, "fetch")) and objects["deployment"] and objects,
        timeout=20,
        message="built after the account appeared",
    )
    assert built["server_sa"] is None, "a named account replaces the generated one"


def test_a_missing_secret_is_passed_by_reference_and_never_read(
    admin: harness.Admin, namespace: str, cluster: cluster_mod.Cluster, start_operator: OperatorFactory
) -> None:
    running = start_operator([namespace])
    if cluster.loopback is not None:
        cluster.loopback.requests.reset()
    admin.create_mcpserver(
        namespace, "github", transport="stdio", secrets=[{"name": "does-not-exist", "key": "token"}]
    )
    built = cluster_mod.poll(
        lambda: (objects := children(admin, namespace, "github")) and all(objects.values()) and objects,
        timeout=20,
        message="built: the operator cannot know the Secret is missing",
    )
    args = built["deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    patch = json.loads(next(a for a in args if a.startswith("--k8s-pod-patch=")).split("=", 1)[1])
    env = next(c for c in patch["spec"]["containers"] if c["name"] == "mcp")["env"]
    assert {"secretKeyRef": {"name": "does-not-exist", "key": "token"}} in [e.get("valueFrom") for e in env]
    assert admin.status(namespace, "github").get("phase") != "Failed"
    # Least privilege: the operator may not read Secrets, and it never tried.
    operator_core = kubernetes.client.CoreV1Api(cluster.api_client(running.rbac.kubeconfig()))
    try:
        with pytest.raises(kubernetes.client.ApiException) as denied:
            operator_core.list_namespaced_secret(namespace)
        assert denied.value.status == 403
    finally:
        operator_core.api_client.close()
    if cluster.loopback is not None:
        asked = [r for r in cluster.loopback.requests if r.resource == "secrets" and r.user == running.user]
        assert len(asked) == 1, "only the test's own probe above"

"""The floor for onboarding latency: the least a namespace-watching grant loop can do.

Run as a subprocess by bench_onboarding: `python -m benchmarks.floor <kubeconfig> <label-key>`. One watch on
Namespaces selected by `<label-key>=true` with the official `kubernetes` client (sync, as most controllers
written against it are); one RoleBinding `floor` created per ADDED/MODIFIED event and deleted per DELETED
event (a namespace leaving the selector). No cache, no policy, no status, no tracing. Prints `ready` once
its initial list is handled. Never used by the operator.
"""

from __future__ import annotations

import sys

import kubernetes


def main(kubeconfig: str, label: str) -> None:
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    core = kubernetes.client.CoreV1Api(client)
    rbac = kubernetes.client.RbacAuthorizationV1Api(client)
    selector = f"{label}=true"

    def grant(namespace: str) -> None:
        body = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "floor", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        }
        try:
            rbac.create_namespaced_role_binding(namespace, body)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise

    def revoke(namespace: str) -> None:
        try:
            rbac.delete_namespaced_role_binding("floor", namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise

    listed = core.list_namespace(label_selector=selector)
    for namespace in listed.items:
        grant(namespace.metadata.name)
    print("ready", flush=True)
    version = listed.metadata.resource_version
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        core.list_namespace, label_selector=selector, resource_version=version, timeout_seconds=3600
    ):
        name = event["object"].metadata.name
        if event["type"] in ("ADDED", "MODIFIED"):
            grant(name)
        elif event["type"] == "DELETED":
            revoke(name)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

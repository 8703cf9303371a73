"""Discovery under test: its RBAC as the chart installs it, the process with its own token, and readers.

Reusable by any integration suite (the operator's tests use it to get real grants): `DiscoveryRbac` installs
the `toolhive-discovery` ServiceAccount, its ClusterRole from `toolhive.rbac_rules` (bind limited to the
operator's ClusterRole), the ClusterRoleBinding and the lease Role; `Discovery` owns one NamespaceDiscovery
object and the discovery process serving it (start, stop, restart), and reads results through the API only
(status, managed RoleBindings, Events), so the same tests run against a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes

import discovery
from discovery import constants
from tests import cluster as cluster_mod
from tests.integration import harness
from toolhive import rbac_rules

GROUP = "toolhive.stacklok.dev"
VERSION = "v1alpha1"
PLURAL = "namespacediscoveries"
RBAC_API = "rbac.authorization.k8s.io/v1"
Body = dict[str, Any]


class DiscoveryRbac:
    """The discovery identity next to the operator's (same release namespace), as the chart renders it."""

    service_account = "toolhive-discovery"

    def __init__(self, admin: harness.Admin, *, operator: harness.OperatorRbac) -> None:
        self.admin = admin
        self.operator = operator
        self.release_namespace = operator.release_namespace
        self.cluster_role = f"toolhive-discovery-test-{secrets.token_hex(3)}"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release_namespace}:{self.service_account}"

    def install(self) -> None:
        rbac = self.admin.rbac
        self.admin.core.create_namespaced_service_account(
            self.release_namespace,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.service_account}},
        )
        rbac.create_cluster_role(
            {
                "apiVersion": RBAC_API,
                "kind": "ClusterRole",
                "metadata": {"name": self.cluster_role},
                "rules": rbac_rules.discovery_cluster_role_rules(self.operator.cluster_role),
            }
        )
        subject = {
            "kind": "ServiceAccount",
            "name": self.service_account,
            "namespace": self.release_namespace,
        }
        rbac.create_cluster_role_binding(
            {
                "apiVersion": RBAC_API,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.cluster_role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.cluster_role,
                },
                "subjects": [subject],
            }
        )
        rbac.create_namespaced_role(
            self.release_namespace,
            {
                "apiVersion": RBAC_API,
                "kind": "Role",
                "metadata": {"name": "toolhive-discovery-leases"},
                "rules": [rule.as_manifest() for rule in rbac_rules.DISCOVERY_LEASE_RULES],
            },
        )
        rbac.create_namespaced_role_binding(
            self.release_namespace,
            {
                "apiVersion": RBAC_API,
                "kind": "RoleBinding",
                "metadata": {"name": "toolhive-discovery-leases"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "toolhive-discovery-leases",
                },
                "subjects": [subject],
            },
        )

    def uninstall(self) -> None:
        with contextlib.suppress(kubernetes.client.ApiException):
            self.admin.rbac.delete_cluster_role_binding(self.cluster_role)
        with contextlib.suppress(kubernetes.client.ApiException):
            self.admin.rbac.delete_cluster_role(self.cluster_role)

    def kubeconfig(self) -> Path:
        """A kubeconfig carrying a fresh token of the discovery ServiceAccount (TokenRequest)."""
        cluster = self.admin.cluster
        return cluster.kubeconfig_for(
            cluster.token_for_serviceaccount(self.release_namespace, self.service_account)
        )


class Discovery:
    """One NamespaceDiscovery object (unique name, so it owns only its own grants) and its process."""

    def __init__(
        self,
        admin: harness.Admin,
        rbac: DiscoveryRbac,
        *,
        spec: Body,
        grace_seconds: float = 30.0,
        name: str | None = None,
        rolebinding_name: str = "toolhive-operator",
    ) -> None:
        self.admin = admin
        self.rbac = rbac
        self.name = name or cluster_mod.unique_name("nsd")
        self.spec = spec
        self.config = discovery.Config(
            resource=discovery.discovery_resource(GROUP, VERSION, PLURAL),
            name=self.name,
            cluster_role=rbac.operator.cluster_role,
            subject_name=rbac.operator.service_account,
            subject_namespace=rbac.release_namespace,
            rolebinding_name=rolebinding_name,
            grace_seconds=grace_seconds,
            instance="discovery-test",
        )
        self.process: harness.Background | None = None
        self._kubeconfig: Path | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def create(self) -> Discovery:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "NamespaceDiscovery",
            "metadata": {"name": self.name},
            "spec": self.spec,
        }
        self.admin.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        return self

    def start(self) -> Discovery:
        """Start the discovery process (in a thread, with its own loop and the discovery SA's token)."""
        assert self.process is None or not self.process.alive, "already running"
        if self._kubeconfig is None:
            self._kubeconfig = self.rbac.kubeconfig()
        kubeconfig = str(self._kubeconfig)
        config = self.config

        async def main(stop: asyncio.Event) -> None:
            await discovery.run(config, kubeconfig=kubeconfig, stop=stop)

        self.process = harness.Background(main, name=f"discovery {self.name}").start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def delete(self) -> None:
        """Delete the object and every grant it left (finalizers dropped first, so no namespace hangs)."""
        with contextlib.suppress(kubernetes.client.ApiException):
            self.admin.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, self.name)
        for namespace in self.managed():
            with contextlib.suppress(kubernetes.client.ApiException):
                self.admin.rbac.patch_namespaced_role_binding(
                    self.config.rolebinding_name, namespace, {"metadata": {"finalizers": None}}
                )
                self.admin.rbac.delete_namespaced_role_binding(self.config.rolebinding_name, namespace)

    # -- the custom resource ----------------------------------------------------------------------------

    def object(self) -> Body:
        return dict(self.admin.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, self.name))

    def status(self) -> Body:
        return dict(self.object().get("status") or {})

    def condition(self, kind: str) -> Body:
        return next((c for c in self.status().get("conditions") or [] if c.get("type") == kind), {})

    def set_spec(self, spec: Body) -> None:
        """Replace the spec, retrying when discovery's status write got in between (409)."""

        def replace() -> bool:
            body = self.object()
            body["spec"] = spec
            try:
                self.admin.custom.replace_cluster_custom_object(GROUP, VERSION, PLURAL, self.name, body)
            except kubernetes.client.ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            return True

        cluster_mod.poll(replace, message=f"replace the spec of {self.name}")
        self.spec = spec

    # -- what discovery wrote ---------------------------------------------------------------------------

    def managed(self) -> dict[str, Body]:
        """Managed RoleBindings of this owner, by namespace (every namespace in the cluster)."""
        selector = self.config.managed_selector
        answer = self.admin.rbac.list_role_binding_for_all_namespaces(label_selector=selector)
        client = self.admin.client
        return {
            item.metadata.namespace: client.sanitize_for_serialization(item)
            for item in answer.items
            if item.metadata.name == self.config.rolebinding_name
        }

    def granted(self, namespaces: set[str] | None = None) -> set[str]:
        """Namespaces (of `namespaces`, when given) holding a live grant of ours (not being deleted)."""
        found = {ns for ns, body in self.managed().items() if not body["metadata"].get("deletionTimestamp")}
        return found & namespaces if namespaces is not None else found

    def events(self, *, involved: str, reason: str | None = None) -> list[Body]:
        """Events discovery posted about `involved` (a Namespace or this object), oldest first."""
        answer = self.admin.core.list_namespaced_event(
            self.config.events_namespace, field_selector=f"involvedObject.name={involved}"
        )
        items = [self.admin.client.sanitize_for_serialization(item) for item in answer.items]
        return [
            item
            for item in items
            if item.get("reportingComponent") == self.config.component
            and (reason is None or item.get("reason") == reason)
        ]

    def wait_converged(self, members: set[str], *, within: set[str], timeout: float = 20.0) -> None:
        """Poll until, among `within`, exactly `members` are granted and published as members, none pending
        or draining (so revoked ones are gone too)."""

        def check() -> bool:
            status = self.status()
            published = set(status.get("members") or []) & within
            waiting = set(status.get("pending") or []) | set(status.get("draining") or [])
            return self.granted(within) == members and published == members and not (waiting & within)

        cluster_mod.poll(
            check, timeout=timeout, message=f"discovery {self.name} to converge on {sorted(members)}"
        )


class Namespaces:
    """Admin-side namespace helpers; every namespace made here is deleted by `cleanup()`."""

    def __init__(self, admin: harness.Admin) -> None:
        self.admin = admin
        self.created: list[str] = []

    def create(self, prefix: str = "d", **labels: str) -> str:
        name = self.admin.cluster.create_namespace(prefix, labels=labels)
        self.created.append(name)
        return name

    def label(self, name: str, **labels: str | None) -> None:
        """Set (or with None remove) labels on namespace `name`."""
        self.admin.core.patch_namespace(name, {"metadata": {"labels": labels}})

    def delete(self, name: str) -> None:
        self.admin.cluster.delete_namespace(name)

    def exists(self, name: str) -> bool:
        try:
            self.admin.core.read_namespace(name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def cleanup(self) -> None:
        for name in self.created:
            self.delete(name)


def selector(key: str, value: str = "on") -> Body:
    """A LabelSelector matching `key=value`."""
    return {"matchLabels": {key: value}}


def rbac_client(kubeconfig: Path) -> kubernetes.client.RbacAuthorizationV1Api:
    """An RBAC API client authenticating with `kubeconfig` (a ServiceAccount's token)."""
    return kubernetes.client.RbacAuthorizationV1Api(
        kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    )


def release(operator_kubeconfig: Path, namespace: str, *, rolebinding: str = "toolhive-operator") -> None:
    """What the operator does after letting go of a draining namespace: annotate the grant `released`."""
    patch = {"metadata": {"annotations": {constants.RELEASED_ANNOTATION: "true"}}}
    client = rbac_client(operator_kubeconfig)
    try:
        client.patch_namespaced_role_binding(rolebinding, namespace, patch)
    finally:
        client.api_client.close()


@contextlib.contextmanager
def serving(discovery_under_test: Discovery) -> Iterator[Discovery]:
    """Create the object, start the process; stop it and delete the object afterwards."""
    discovery_under_test.create().start()
    try:
        yield discovery_under_test
    finally:
        discovery_under_test.stop()
        discovery_under_test.delete()

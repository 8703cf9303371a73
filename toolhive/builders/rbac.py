"""The proxy runner's Role and RoleBinding, both `<name>-proxy-runner`.

Pure: no I/O. Called by `builders.build_all`. The rules are ToolHive's `defaultRBACRules` with one change:
`pods/attach` (exec-equivalent, flagged by Polaris) is granted only when the transport is stdio, the only
case in which the runner attaches to the MCP server's stdin/stdout (ToolHive #6230). Every rule must stay
inside `rbac_rules.OPERATOR_CLUSTER_ROLE_RULES`, or the API server refuses to let the operator create it.
"""

from __future__ import annotations

from toolhive import names, rbac_rules
from toolhive.api import models
from toolhive.builders import inputs, meta

PROXY_RUNNER_RULES: tuple[rbac_rules.PolicyRule, ...] = (
    # The runner server-side-applies the backend StatefulSet and, for HTTP transports, its Services.
    rbac_rules.PolicyRule(("apps",), ("statefulsets",), rbac_rules.CRUD),
    rbac_rules.PolicyRule(("",), ("services",), rbac_rules.CRUD),
    # It watches the backend pod to know when it is ready, and streams its logs.
    rbac_rules.PolicyRule(("",), ("pods",), rbac_rules.READ),
    rbac_rules.PolicyRule(("",), ("pods/log",), ("get",)),
    rbac_rules.PolicyRule(("",), ("configmaps",), rbac_rules.READ),
)
STDIO_ATTACH_RULE = rbac_rules.PolicyRule(("",), ("pods/attach",), ("create", "get"))
"""Attaching to the backend pod: needed for stdio only."""


def proxy_runner_rules(transport: models.Transport) -> tuple[rbac_rules.PolicyRule, ...]:
    """The rules the proxy runner needs for `transport`."""
    if transport is models.Transport.STDIO:
        return (*PROXY_RUNNER_RULES, STDIO_ATTACH_RULE)
    return PROXY_RUNNER_RULES


def build_proxy_runner_role(server: inputs.Server, *, config: inputs.BuildConfig) -> inputs.Manifest:
    """Role `<name>-proxy-runner`, rules sorted so equal servers give identical Roles."""
    del config  # same signature as every builder; the Role depends on the spec only
    rules = sorted(
        (rule.as_manifest() for rule in proxy_runner_rules(server.spec.transport)),
        key=lambda rule: (rule["apiGroups"], rule["resources"]),
    )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta.object_meta(server, names.proxy_runner_name(server.name)),
        "rules": rules,
    }


def build_proxy_runner_rolebinding(server: inputs.Server, *, config: inputs.BuildConfig) -> inputs.Manifest:
    """RoleBinding `<name>-proxy-runner`: the Role to the ServiceAccount of the same name.

    `roleRef` is immutable in Kubernetes; it never changes for a given server, so applying this again is
    always accepted.
    """
    del config
    name = names.proxy_runner_name(server.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta.object_meta(server, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": server.namespace}],
    }

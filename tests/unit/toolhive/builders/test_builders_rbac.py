"""The proxy runner's Role and RoleBinding: ToolHive's rules, pods/attach for stdio only, inside the
operator's own ClusterRole."""

from __future__ import annotations

import pytest
from builders_testkit import Golden, MakeServer

from toolhive import rbac_rules
from toolhive.api import models
from toolhive.builders import BuildConfig, rbac

ATTACH = {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["create", "get"]}


@pytest.mark.parametrize(
    ("transport", "grants_attach"),
    [
        pytest.param("stdio", True, id="stdio transport grants pods/attach"),
        pytest.param("sse", False, id="http transports do not grant pods/attach (sse)"),
        pytest.param(
            "streamable-http", False, id="http transports do not grant pods/attach (streamable-http)"
        ),
    ],
)
def test_pods_attach_follows_the_transport(
    make_server: MakeServer, config: BuildConfig, transport: str, grants_attach: bool
) -> None:
    role = rbac.build_proxy_runner_role(make_server(transport=transport), config=config)
    assert (ATTACH in role["rules"]) is grants_attach


@pytest.mark.parametrize(
    "transport", list(models.Transport), ids=lambda t: f"every {t} rule is in the ClusterRole"
)
def test_every_proxy_runner_rule_is_covered_by_the_operator_cluster_role(transport: models.Transport) -> None:
    rules = rbac.proxy_runner_rules(transport)
    assert rbac_rules.uncovered(rules, by=rbac_rules.OPERATOR_CLUSTER_ROLE_RULES) == []


def test_the_coverage_check_reports_what_is_missing() -> None:
    secrets = rbac_rules.PolicyRule(("",), ("secrets",), ("get",))
    assert rbac_rules.uncovered([secrets], by=rbac_rules.OPERATOR_CLUSTER_ROLE_RULES) == [
        ("", "secrets", "get")
    ]
    wildcard = rbac_rules.PolicyRule(("*",), ("*",), ("*",))
    assert rbac_rules.uncovered([secrets], by=[wildcard]) == []


def test_the_rules_are_toolhives_default_rules_for_stdio(
    make_server: MakeServer, config: BuildConfig
) -> None:
    role = rbac.build_proxy_runner_role(make_server(transport="stdio"), config=config)
    as_set = {(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]}
    crud = ("create", "delete", "get", "list", "patch", "update", "watch")
    assert as_set == {
        (("apps",), ("statefulsets",), crud),
        (("",), ("services",), crud),
        (("",), ("pods",), ("get", "list", "watch")),
        (("",), ("pods/log",), ("get",)),
        (("",), ("pods/attach",), ("create", "get")),
        (("",), ("configmaps",), ("get", "list", "watch")),
    }


def test_the_rolebinding_binds_the_role_to_the_proxy_runner_account(
    make_server: MakeServer, config: BuildConfig
) -> None:
    binding = rbac.build_proxy_runner_rolebinding(make_server(namespace="team-b"), config=config)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "github-proxy-runner",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "github-proxy-runner", "namespace": "team-b"}
    ]


@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
def test_role_golden(make_server: MakeServer, config: BuildConfig, golden: Golden, transport: str) -> None:
    golden.check(
        f"role-{transport}.json",
        rbac.build_proxy_runner_role(make_server(transport=transport), config=config),
    )


def test_rolebinding_golden(make_server: MakeServer, config: BuildConfig, golden: Golden) -> None:
    golden.check("rolebinding.json", rbac.build_proxy_runner_rolebinding(make_server(), config=config))

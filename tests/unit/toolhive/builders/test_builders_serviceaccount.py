"""The two identities: the proxy runner's account and the MCP server pod's own, never shared."""

from __future__ import annotations

from builders_testkit import Golden, MakeServer

from toolhive import builders
from toolhive.builders import BuildConfig, serviceaccount


def test_custom_service_account_skips_the_name_sa_account(
    make_server: MakeServer, config: BuildConfig
) -> None:
    server = make_server(serviceAccount="github-reader")
    assert serviceaccount.build_mcp_serviceaccount(server, config=config) is None
    names = [(m["kind"], m["metadata"]["name"]) for m in builders.build_all(server, config=config)]
    assert ("ServiceAccount", "github-sa") not in names
    assert ("ServiceAccount", "github-proxy-runner") in names


def test_the_mcp_server_account_mounts_no_token(make_server: MakeServer, config: BuildConfig) -> None:
    account = serviceaccount.build_mcp_serviceaccount(make_server(), config=config)
    assert account is not None
    assert account["metadata"]["name"] == "github-sa"
    assert account["automountServiceAccountToken"] is False


def test_pull_secrets_merge_the_servers_own_before_the_operator_defaults(make_server: MakeServer) -> None:
    server = make_server(
        resourceOverrides={"proxyDeployment": {"imagePullSecrets": [{"name": "team"}, {"name": "shared"}]}}
    )
    config = BuildConfig(image_pull_secrets=("shared", "registry"))
    account = serviceaccount.build_proxy_runner_serviceaccount(server, config=config)
    assert account["imagePullSecrets"] == [{"name": "team"}, {"name": "shared"}, {"name": "registry"}]


def test_no_pull_secrets_means_no_field(make_server: MakeServer, config: BuildConfig) -> None:
    assert "imagePullSecrets" not in serviceaccount.build_proxy_runner_serviceaccount(
        make_server(), config=config
    )


def test_serviceaccount_goldens(make_server: MakeServer, golden: Golden) -> None:
    config = BuildConfig(image_pull_secrets=("registry",))
    server = make_server()
    golden.check(
        "serviceaccount-proxy-runner.json",
        serviceaccount.build_proxy_runner_serviceaccount(server, config=config),
    )
    golden.check("serviceaccount-mcp.json", serviceaccount.build_mcp_serviceaccount(server, config=config))

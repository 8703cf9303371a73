"""Object names derived from an MCPServer name: ToolHive's patterns, Kubernetes' length limits."""

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolhive import names

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        pytest.param(names.deployment_name, "github", id="the Deployment is named after the server"),
        pytest.param(names.proxy_runner_name, "github-proxy-runner", id="proxy runner identity"),
        pytest.param(names.mcp_serviceaccount_name, "github-sa", id="MCP server pod identity"),
        pytest.param(names.runconfig_name, "github-runconfig", id="RunConfig ConfigMap"),
        pytest.param(names.proxy_service_name, "mcp-github-proxy", id="proxy Service"),
        pytest.param(names.label_value, "github", id="short label values are unchanged"),
    ],
)
def test_short_names_follow_toolhive_patterns(function: Callable[[str], str], expected: str) -> None:
    assert function("github") == expected


def test_names_past_63_characters_are_truncated_with_a_stable_hash() -> None:
    long_name = "a" * 60
    service = names.proxy_service_name(long_name)
    assert len(service) == 63
    assert DNS_LABEL.match(service)
    assert service.startswith("mcp-aaaa")
    assert service == names.proxy_service_name(long_name), "the same input gives the same name"
    assert names.label_value("b" * 70) != names.label_value("b" * 71), "different inputs stay distinct"
    assert len(names.label_value("b" * 70)) == 63


def test_names_sharing_a_long_prefix_get_different_hashes() -> None:
    first, second = "x" * 58 + "one", "x" * 58 + "two"
    assert names.proxy_service_name(first) != names.proxy_service_name(second)


@pytest.mark.parametrize(
    "function",
    [names.proxy_runner_name, names.mcp_serviceaccount_name, names.runconfig_name, names.deployment_name],
    ids=["proxy runner", "server account", "runconfig", "deployment"],
)
def test_names_past_253_characters_are_truncated_to_a_subdomain(function: Callable[[str], str]) -> None:
    name = ".".join(["segment"] * 31) + ".abcdefghijklmnop"  # 264 characters, a valid subdomain shape
    result = function(name)
    assert len(result) <= 253
    assert DNS_SUBDOMAIN.match(result)


def test_a_cut_at_a_separator_never_leaves_a_dangling_dash() -> None:
    name = "a" * 53 + "-" * 5 + "b" * 10
    value = names.label_value(name)
    assert LABEL_VALUE.match(value)
    assert "--" not in value[-10:]


def test_names_that_fit_are_never_hashed() -> None:
    exactly = "a" * 53  # mcp- + 53 + -proxy = 63
    assert names.proxy_service_name(exactly) == f"mcp-{exactly}-proxy"


def test_a_limit_too_small_for_the_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="limit 9"):
        names.fit("abc", limit=9)


def test_runner_created_names_are_not_truncated() -> None:
    assert names.statefulset_name("github") == "github"
    assert names.headless_service_name("github") == "mcp-github-headless"
    assert names.backend_service_name("github") == "mcp-github"


@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,250}[a-z0-9])?", fullmatch=True))
def test_every_derived_name_fits_its_limit_and_syntax(name: str) -> None:
    service = names.proxy_service_name(name)
    assert len(service) <= names.DNS_LABEL_MAX
    assert DNS_LABEL.match(service)
    label = names.label_value(name)
    assert len(label) <= names.DNS_LABEL_MAX
    assert LABEL_VALUE.match(label)
    for derived in (
        names.proxy_runner_name(name),
        names.mcp_serviceaccount_name(name),
        names.runconfig_name(name),
    ):
        assert len(derived) <= names.DNS_SUBDOMAIN_MAX
        assert DNS_SUBDOMAIN.match(derived)

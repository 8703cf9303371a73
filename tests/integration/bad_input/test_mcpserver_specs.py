"""Broken MCPServer specs, with the operator running: the API server rejects what its schema can say (422
naming the field, 413 past the request limit), the operator fails what only it can judge (phase Failed, a
condition naming the field); either way nothing is created and the neighbour server is untouched."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests import cluster as cluster_mod
from tests.integration import harness
from tests.integration.bad_input.conftest import api_error
from tests.integration.operator.conftest import OperatorFactory, RunningOperator
from toolhive import names
from toolhive.api import validation

GROUP, VERSION, PLURAL = "toolhive.stacklok.dev", "v1beta1", "mcpservers"
IMAGE = "ghcr.io/example/mcp-server:1.0"

# (id, spec, the field the 422 names)
SCHEMA_REJECTS: list[tuple[str, dict[str, Any], str]] = [
    ("a port as a word", {"proxyPort": "eighty"}, "spec.proxyPort"),
    ("a port above 65535", {"proxyPort": 70000}, "spec.proxyPort"),
    ("args as a string", {"args": "--verbose"}, "spec.args"),
    ("args as numbers", {"args": [1, 2]}, "spec.args[0]"),
    ("an unknown transport", {"transport": "carrier-pigeon"}, "spec.transport"),
    ("env as a map", {"env": {"TOKEN": "x"}}, "spec.env"),
    ("a cpu limit as a number", {"resources": {"limits": {"cpu": 5}}}, "spec.resources.limits.cpu"),
    ("a secret without its key", {"secrets": [{"name": "token"}]}, "spec.secrets[0].key"),
    ("no image", {"image": None}, "spec.image"),
]

# (id, spec, what the Failed condition names) - valid to the schema, not buildable.
OPERATOR_FAILS: list[tuple[str, dict[str, Any], str]] = [
    (
        "a cpu limit that is no quantity",
        {"resources": {"limits": {"cpu": "lots"}}},
        "spec.resources.limits.cpu",
    ),
    ("args of 300 KiB in total", {"args": ["a" * 1024] * 300}, "spec.args: are 307200 bytes in total"),
    ("one argument past exec's limit", {"args": ["b" * 200_000]}, "spec.args[0]: is 200000 bytes"),
    ("a service account that is no name", {"serviceAccount": "Not_A_Name"}, "spec.serviceAccount"),
]


def body(name: str, **spec: Any) -> dict[str, Any]:
    merged = {key: value for key, value in {"image": IMAGE, **spec}.items() if value is not None}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MCPServer",
        "metadata": {"name": name},
        "spec": merged,
    }


def children(admin: harness.Admin, namespace: str, name: str) -> dict[str, Any]:
    read = admin.read
    return {
        "runner_sa": read(
            admin.core.read_namespaced_service_account, names.proxy_runner_name(name), namespace
        ),
        "server_sa": read(
            admin.core.read_namespaced_service_account, names.mcp_serviceaccount_name(name), namespace
        ),
        "role": read(admin.rbac.read_namespaced_role, names.proxy_runner_name(name), namespace),
        "binding": read(admin.rbac.read_namespaced_role_binding, names.proxy_runner_name(name), namespace),
        "runconfig": read(admin.core.read_namespaced_config_map, names.runconfig_name(name), namespace),
        "service": read(admin.core.read_namespaced_service, names.proxy_service_name(name), namespace),
        "deployment": read(admin.apps.read_namespaced_deployment, names.deployment_name(name), namespace),
    }


def steady_state(admin: harness.Admin, namespace: str) -> dict[str, str]:
    """resourceVersions of the neighbour's objects that only the operator writes (not Deployment status)."""
    found = children(admin, namespace, "steady")
    return {key: value["metadata"]["resourceVersion"] for key, value in found.items() if key != "deployment"}


@pytest.fixture
def neighbour(admin: harness.Admin, namespace: str, start_operator: OperatorFactory) -> RunningOperator:
    """The operator serving `namespace`, with one healthy MCPServer `steady` fully built there."""
    running = start_operator([namespace])
    admin.create_mcpserver(namespace, "steady", transport="sse")
    cluster_mod.poll(
        lambda: all(children(admin, namespace, "steady").values()), timeout=20, message="steady built"
    )
    return running


@pytest.mark.parametrize(
    ("spec", "field"), [case[1:] for case in SCHEMA_REJECTS], ids=[case[0] for case in SCHEMA_REJECTS]
)
def test_a_wrong_type_is_rejected_by_the_api_naming_the_field(
    admin: harness.Admin, namespace: str, neighbour: RunningOperator, spec: dict[str, Any], field: str
) -> None:
    before = steady_state(admin, namespace)
    status, message = api_error(
        lambda: admin.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body("bad", **spec)
        )
    )
    assert status == 422, message
    assert re.search(rf"(^|[\s\[]){re.escape(field)}:", message), message
    assert admin.get_mcpserver(namespace, "bad") is None
    assert steady_state(admin, namespace) == before


def test_an_unknown_field_is_pruned_or_with_strict_validation_rejected(
    admin: harness.Admin, namespace: str, neighbour: RunningOperator
) -> None:
    strict = body("strict", bogus=1)
    status, message = api_error(
        lambda: admin.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, strict, field_validation="Strict"
        )
    )
    assert status == 400 and 'unknown field "spec.bogus"' in message
    assert admin.get_mcpserver(namespace, "strict") is None
    # Without Strict (the API default) the structural schema prunes it: the server runs without it.
    admin.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body("pruned", bogus=1))
    stored = admin.get_mcpserver(namespace, "pruned")
    assert stored is not None and "bogus" not in stored["spec"]
    cluster_mod.poll(lambda: all(children(admin, namespace, "pruned").values()), timeout=20, message="built")


def test_a_request_past_the_api_limit_is_rejected_with_413_and_creates_nothing(
    admin: harness.Admin, namespace: str, neighbour: RunningOperator
) -> None:
    # Kubernetes refuses request bodies over 3 MiB (MaxRequestBodyBytes) before decoding them.
    huge = body("huge", args=["x" * 1024 * 1024] * 4)
    status, message = api_error(
        lambda: admin.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, huge)
    )
    assert status == 413, message
    assert admin.get_mcpserver(namespace, "huge") is None


@pytest.mark.parametrize(
    ("spec", "named"), [case[1:] for case in OPERATOR_FAILS], ids=[case[0] for case in OPERATOR_FAILS]
)
def test_a_spec_only_the_operator_can_judge_fails_naming_the_field_and_builds_nothing(
    admin: harness.Admin,
    namespace: str,
    cluster: cluster_mod.Cluster,
    neighbour: RunningOperator,
    spec: dict[str, Any],
    named: str,
) -> None:
    before = steady_state(admin, namespace)
    admin.create_mcpserver(namespace, "bad", **spec)
    status = cluster_mod.poll(
        lambda: (found := admin.status(namespace, "bad")).get("phase") == "Failed" and found,
        timeout=20,
        message="phase Failed",
    )
    spec_valid = next(c for c in status["conditions"] if c["type"] == "SpecValid")
    assert spec_valid["status"] == "False" and named in spec_valid["message"], spec_valid
    assert named in status["message"]
    assert not any(children(admin, namespace, "bad").values())
    assert steady_state(admin, namespace) == before
    if cluster.loopback is not None:
        # Failed is final until the spec changes: no retry, no write in a quiet window.
        cluster.loopback.requests.reset()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert cluster.loopback.requests.count(writes=True, user=neighbour.user) == 0
            time.sleep(0.1)


def test_a_name_at_the_length_limit_builds_every_object_with_valid_names(
    admin: harness.Admin, namespace: str, neighbour: RunningOperator
) -> None:
    name = "n" * 40 + "-" + "m" * 9  # 50 characters: the longest name the proxy runner can work with
    assert len(name) == validation.MAX_NAME_LENGTH
    admin.create_mcpserver(namespace, name, transport="streamable-http")
    found = cluster_mod.poll(
        lambda: (objects := children(admin, namespace, name)) and all(objects.values()) and objects,
        timeout=20,
        message="every object of the 50-character server",
    )
    service = found["service"]["metadata"]["name"]
    assert service == f"mcp-{name}-proxy" == names.proxy_service_name(name)
    assert len(service) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", service)
    labels = found["deployment"]["metadata"]["labels"]
    assert all(len(value) <= 63 for value in labels.values())
    assert found["deployment"]["metadata"]["name"] == name
    server = cluster_mod.poll(
        lambda: (s := admin.status(namespace, name)).get("url") and s, timeout=20, message="url"
    )
    assert f"{service}.{namespace}" in server["url"]


def test_a_name_longer_than_the_runner_can_use_fails_naming_metadata_name(
    admin: harness.Admin, namespace: str, neighbour: RunningOperator
) -> None:
    name = "n" * 50 + "-" + "m" * 12  # 63 characters: a valid object name, but mcp-<name>-headless is not
    admin.create_mcpserver(namespace, name, transport="streamable-http")
    status = cluster_mod.poll(
        lambda: (s := admin.status(namespace, name)).get("phase") == "Failed" and s,
        timeout=20,
        message="Failed for the long name",
    )
    assert "metadata.name: must be no more than 50 characters" in status["message"]
    assert all(value is None for value in children(admin, namespace, name).values())

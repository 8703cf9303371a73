"""Validation: every bad MCPServer gets one clear error naming the field and the rule; nothing raises."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import hypothesis
import pydantic
import pytest
import yaml
from hypothesis import strategies as st

from toolhive import errors
from toolhive.api import models, validation

MANIFESTS = pathlib.Path(__file__).parents[3] / "manifests"
INVALID = sorted((MANIFESTS / "invalid").glob("*.yaml"))
VALID = sorted(MANIFESTS.glob("*.yaml"))


def make_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "toolhive.stacklok.dev/v1beta1",
        "kind": "MCPServer",
        "metadata": {"name": "fetch", "namespace": "team-a", "generation": 1},
        "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:1.0.1", **spec},
    }


def messages(body: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in validation.check(body).problems]


# (id, spec fields, the one expected message)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # Schema rules, as pydantic reports them.
    ("proxy port above 65535", {"proxyPort": 65536}, "spec.proxyPort: must be <= 65535"),
    ("proxy port zero", {"proxyPort": 0}, "spec.proxyPort: must be >= 1"),
    ("mcp port above 65535", {"mcpPort": 99999}, "spec.mcpPort: must be <= 65535"),
    ("proxy port as a string", {"proxyPort": "8080"}, "spec.proxyPort: must be an integer"),
    ("negative replicas", {"replicas": -1}, "spec.replicas: must be >= 0"),
    ("negative backend replicas", {"backendReplicas": -2}, "spec.backendReplicas: must be >= 0"),
    (
        "unknown transport",
        {"transport": "grpc"},
        "spec.transport: must be one of: stdio, streamable-http, sse (got 'grpc')",
    ),
    (
        "unknown proxy mode",
        {"proxyMode": "stdio"},
        "spec.proxyMode: must be one of: sse, streamable-http (got 'stdio')",
    ),
    (
        "session affinity in the wrong case",
        {"sessionAffinity": "clientip"},
        "spec.sessionAffinity: must be one of: ClientIP, None (got 'clientip')",
    ),
    (
        "unknown permission profile type",
        {"permissionProfile": {"type": "file", "name": "x"}},
        "spec.permissionProfile.type: must be one of: builtin, configmap (got 'file')",
    ),
    (
        "permission profile without a name",
        {"permissionProfile": {"type": "builtin"}},
        "spec.permissionProfile.name: is required",
    ),
    ("misspelled spec field", {"tranport": "sse"}, "spec.tranport: unknown field"),
    ("env var without a value", {"env": [{"name": "A"}]}, "spec.env[0].value: is required"),
    (
        "env var with a number value",
        {"env": [{"name": "A", "value": 1}]},
        "spec.env[0].value: must be a string",
    ),
    ("env as a map", {"env": {"A": "b"}}, "spec.env: must be an array"),
    ("secret without a key", {"secrets": [{"name": "s"}]}, "spec.secrets[0].key: is required"),
    (
        "volume without a host path",
        {"volumes": [{"name": "v", "mountPath": "/d"}]},
        "spec.volumes[0].hostPath: is required",
    ),
    (
        "read-only as a string",
        {"volumes": [{"name": "v", "hostPath": "/h", "mountPath": "/d", "readOnly": "yes"}]},
        "spec.volumes[0].readOnly: must be a boolean",
    ),
    (
        "trust proxy headers as a string",
        {"trustProxyHeaders": "true"},
        "spec.trustProxyHeaders: must be a boolean",
    ),
    ("pod template as a list", {"podTemplateSpec": []}, "spec.podTemplateSpec: must be an object"),
    (
        "annotation value that is not a string",
        {"resourceOverrides": {"proxyService": {"annotations": {"a": 1}}}},
        "spec.resourceOverrides.proxyService.annotations.a: must be a string",
    ),
    (
        "unknown key in resource overrides",
        {"resourceOverrides": {"proxyDeploymnet": {}}},
        "spec.resourceOverrides.proxyDeploymnet: unknown field",
    ),
    # The operator's own rules.
    (
        "unknown builtin permission profile",
        {"permissionProfile": {"type": "builtin", "name": "all"}},
        "spec.permissionProfile.name: must be 'none' or 'network' when type is 'builtin'",
    ),
    (
        "cpu that is not a quantity",
        {"resources": {"limits": {"cpu": "two cores"}}},
        "spec.resources.limits.cpu: must be a Kubernetes quantity such as 500m, 1, 64Mi (got 'two cores')",
    ),
    (
        "memory that is not a quantity",
        {"resources": {"requests": {"memory": "64MB"}}},
        "spec.resources.requests.memory: must be a Kubernetes quantity such as 500m, 1, 64Mi (got '64MB')",
    ),
    (
        "service account with capitals",
        {"serviceAccount": "Reader"},
        "spec.serviceAccount: must be a DNS-1123 subdomain (lowercase alphanumerics and '-', at most 253)",
    ),
    (
        "secret name with an underscore",
        {"secrets": [{"name": "my_secret", "key": "token"}]},
        "spec.secrets[0].name: must be a DNS-1123 subdomain (lowercase alphanumerics and '-', at most 253)",
    ),
    (
        "secret key with a slash",
        {"secrets": [{"name": "s", "key": "a/b"}]},
        "spec.secrets[0].key: must consist of alphanumerics, '-', '_' or '.'",
    ),
    (
        "empty target env name",
        {"secrets": [{"name": "s", "key": "k", "targetEnvName": ""}]},
        "spec.secrets[0].targetEnvName: must not be empty when set",
    ),
    (
        "relative mount path",
        {"volumes": [{"name": "data", "hostPath": "/srv", "mountPath": "data"}]},
        "spec.volumes[0].mountPath: must be an absolute path",
    ),
    (
        "volume name with a dot",
        {"volumes": [{"name": "my.data", "hostPath": "/srv", "mountPath": "/data"}]},
        "spec.volumes[0].name: must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)",
    ),
    (
        "label value too long",
        {"resourceOverrides": {"proxyDeployment": {"labels": {"team": "x" * 64}}}},
        "spec.resourceOverrides.proxyDeployment.labels['team']: "
        "must be a valid label value (at most 63 alphanumerics, '-', '_' or '.')",
    ),
    (
        "pod label key with a space",
        {
            "resourceOverrides": {
                "proxyDeployment": {"podTemplateMetadataOverrides": {"labels": {"a b": "c"}}}
            }
        },
        "spec.resourceOverrides.proxyDeployment.podTemplateMetadataOverrides.labels['a b']: "
        "is not a valid label key",
    ),
    (
        "sidecar without an image",
        {"podTemplateSpec": {"spec": {"containers": [{"name": "mcp"}, {"name": "proxy"}]}}},
        "spec.podTemplateSpec.spec.containers[1].image: is required: only the container named 'mcp' "
        "is the MCP server; others are added next to it",
    ),
    (
        "init container without an image",
        {"podTemplateSpec": {"spec": {"initContainers": [{"name": "mcp"}]}}},
        "spec.podTemplateSpec.spec.initContainers[0].image: is required: only the container named 'mcp' "
        "is the MCP server; others are added next to it",
    ),
    (
        "container without a name",
        {"podTemplateSpec": {"spec": {"containers": [{"image": "busybox"}]}}},
        "spec.podTemplateSpec.spec.containers[0].name: is required",
    ),
    (
        "two containers named mcp",
        {"podTemplateSpec": {"spec": {"containers": [{"name": "mcp"}, {"name": "mcp"}]}}},
        "spec.podTemplateSpec.spec.containers[1].name: "
        "duplicates spec.podTemplateSpec.spec.containers[0] ('mcp')",
    ),
    (
        "containers as a map",
        {"podTemplateSpec": {"spec": {"containers": {"mcp": {}}}}},
        "spec.podTemplateSpec.spec.containers: must be an array",
    ),
    (
        "pod spec as a string",
        {"podTemplateSpec": {"spec": "containers: []"}},
        "spec.podTemplateSpec.spec: must be an object",
    ),
    (
        "pod template label that is not a string",
        {"podTemplateSpec": {"metadata": {"labels": {"a": True}}}},
        "spec.podTemplateSpec.metadata.labels['a']: must be a string",
    ),
    (
        "node selector as a list",
        {"podTemplateSpec": {"spec": {"nodeSelector": ["linux"]}}},
        "spec.podTemplateSpec.spec.nodeSelector: must be an object",
    ),
    (
        "container env entry without a name",
        {"podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "env": [{"value": "x"}]}]}}},
        "spec.podTemplateSpec.spec.containers[0].env[0].name: is required",
    ),
    (
        "oidc config that this operator cannot enforce",
        {"oidcConfigRef": {"name": "idp", "audience": "fetch"}},
        "spec.oidcConfigRef: is not implemented by this operator; the server is not deployed rather than run "
        "without the protection this field asks for",
    ),
    (
        "inline authorization that this operator cannot enforce",
        {"authzConfig": {"type": "inline", "inline": {"policies": ["permit(principal, action, resource);"]}}},
        "spec.authzConfig: is not implemented by this operator; the server is not deployed rather than run "
        "without the protection this field asks for",
    ),
    (
        "tool filtering that this operator cannot apply",
        {"toolConfigRef": {"name": "read-only-tools"}},
        "spec.toolConfigRef: is not implemented by this operator; the server is not deployed rather than run "
        "without the protection this field asks for",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_invalid_spec_is_reported_with_field_and_rule(spec: dict[str, Any], expected: str) -> None:
    assert messages(make_body(**spec)) == [expected]


@pytest.mark.parametrize("path", INVALID, ids=[path.stem for path in INVALID])
def test_invalid_manifest_is_reported_as_its_header_says(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = [
        line.removeprefix("# expect: ") for line in text.splitlines() if line.startswith("# expect: ")
    ]
    assert expected, f"{path.name} needs a '# expect: ' line"
    assert messages(yaml.safe_load(text)) == expected


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_representative_manifest_is_valid(path: pathlib.Path) -> None:
    checked = validation.check(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert checked.problems == ()
    assert checked.valid


def test_every_schema_problem_is_reported_at_once() -> None:
    body = make_body(proxyPort=0, transport="tcp", serviceAccount="A")
    assert messages(body) == [
        "spec.transport: must be one of: stdio, streamable-http, sse (got 'tcp')",
        "spec.proxyPort: must be >= 1",
    ]  # schema errors stop parsing; the operator's rules run on a spec that parses


def test_missing_spec_is_reported() -> None:
    body = make_body()
    del body["spec"]
    assert messages(body) == ["spec: is required"]


def test_advisory_unsupported_fields_are_listed_not_rejected() -> None:
    checked = validation.check(make_body(audit={"enabled": True}, groupRef={"name": "eng"}))
    assert checked.valid
    assert checked.unsupported == ("audit", "groupRef")


def test_fail_closed_fields_are_both_problems_and_listed_as_unsupported() -> None:
    checked = validation.check(make_body(rateLimiting={"shared": {"maxTokens": 5, "refillPeriod": "1m"}}))
    assert [problem.field_path for problem in checked.problems] == ["spec.rateLimiting"]
    assert checked.unsupported == ("rateLimiting",)


def test_pod_template_problems_are_singled_out_for_the_pod_template_condition() -> None:
    checked = validation.check(
        make_body(serviceAccount="BAD", podTemplateSpec={"spec": {"containers": [{"name": "side"}]}})
    )
    assert [p.field_path for p in checked.problems] == [
        "spec.serviceAccount",
        "spec.podTemplateSpec.spec.containers[0].image",
    ]
    assert [p.field_path for p in checked.pod_template_problems] == [
        "spec.podTemplateSpec.spec.containers[0].image"
    ]


def test_an_unreadable_status_never_fails_the_spec() -> None:
    body = make_body()
    body["status"] = {"phase": "Exploded", "conditions": "none"}
    checked = validation.check(body)
    assert checked.valid
    assert checked.server is not None and checked.server.status is None


def test_a_readable_status_is_kept() -> None:
    body = make_body()
    body["status"] = {"phase": "Ready", "readyReplicas": 1}
    checked = validation.check(body)
    assert checked.server is not None and checked.server.status is not None
    assert checked.server.status.phase is models.Phase.READY


def test_check_does_not_modify_its_input() -> None:
    body = make_body(secrets=[{"name": "s", "key": "k"}])
    before = copy.deepcopy(body)
    validation.check(body)
    assert body == before


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("spec", "secrets", 0, "key"), "spec.secrets[0].key"),
        (("spec", "resourceOverrides", "proxyService", "labels", "app.kubernetes.io/name"),
         "spec.resourceOverrides.proxyService.labels['app.kubernetes.io/name']"),
        ((), "(root)"),
    ],
    ids=["nested list item", "map key with dots and a slash", "the object itself"],
)  # fmt: skip
def test_field_path_spells_locations_like_the_manifest(loc: tuple[int | str, ...], path: str) -> None:
    assert validation.field_path(loc) == path


def test_from_pydantic_uses_manifest_names() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        models.MCPServerSpec.model_validate({"image": "x", "mcpPort": 0})
    assert validation.from_pydantic(caught.value) == [errors.InvalidSpec("mcpPort", "must be >= 1")]


def test_summary_joins_problems_for_a_condition_message() -> None:
    problems = [errors.InvalidSpec("spec.a", "is required"), errors.InvalidSpec("spec.b", "must be >= 1")]
    assert validation.summarize(problems) == "spec.a: is required; spec.b: must be >= 1"


def test_invalid_spec_reads_as_path_and_rule() -> None:
    problem = errors.InvalidSpec("spec.proxyPort", "must be <= 65535")
    assert str(problem) == "spec.proxyPort: must be <= 65535"
    assert problem == errors.InvalidSpec("spec.proxyPort", "must be <= 65535")
    assert isinstance(problem, Exception)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
SPEC_KEYS = st.sampled_from(
    [*(field.alias or name for name, field in models.MCPServerSpec.model_fields.items()), "x"]
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(spec=st.dictionaries(SPEC_KEYS, JSON, max_size=6))
def test_check_never_raises_and_every_problem_names_a_spec_field(spec: dict[str, Any]) -> None:
    checked = validation.check({"metadata": {"name": "x"}, "spec": spec})
    assert checked.valid == (checked.server is not None and not checked.problems)
    for problem in checked.problems:
        assert problem.field_path.startswith("spec")
        assert problem.message


CONTAINER = st.dictionaries(st.sampled_from(["name", "image", "env"]), JSON | st.just("mcp"), max_size=3)
POD_SPEC = st.dictionaries(
    st.sampled_from(["containers", "initContainers", "nodeSelector", "volumes", "serviceAccountName"]),
    JSON | st.lists(CONTAINER, max_size=3),
    max_size=3,
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(metadata=JSON, pod_spec=JSON | POD_SPEC)
def test_any_pod_template_is_judged_without_raising(metadata: Any, pod_spec: Any) -> None:
    for problem in validation.pod_template_problems({"metadata": metadata, "spec": pod_spec}):
        assert problem.field_path.startswith("spec.podTemplateSpec")


@pytest.mark.parametrize(
    ("length", "valid"),
    [
        pytest.param(50, True, id="a 50-character name fits every name the proxy runner derives"),
        pytest.param(51, False, id="a 51-character name would overflow mcp-<name>-headless"),
    ],
)
def test_server_names_are_bounded_by_what_the_runner_derives(length: int, valid: bool) -> None:
    body = make_body()
    body["metadata"]["name"] = "n" * length
    found = messages(body)
    if valid:
        assert found == []
    else:
        assert found == [
            "metadata.name: must be no more than 50 characters: the proxy runner names its Services "
            "mcp-<name>-headless and its StatefulSet's pods after the server, which must fit 63"
        ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(True, ["containers[0].env: must be an array"], id="env that is not a list"),
        pytest.param(
            [{"value": "x"}, 3],
            ["containers[0].env[1]: must be an object", "containers[0].env[0].name: is required"],
            id="env items that are not objects or lack a name",
        ),
    ],
)
def test_pod_template_env_of_the_wrong_shape_is_reported_not_raised(env: Any, expected: list[str]) -> None:
    problems = validation.pod_template_problems({"spec": {"containers": [{"name": "mcp", "env": env}]}})
    prefix = "spec.podTemplateSpec.spec."
    assert sorted(str(p).removeprefix(prefix) for p in problems) == sorted(expected)

"""Values: the matrix of lists and selectors, bad values rejected with the key named, one test per value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart import objects
from tests.tools import helm as helm_tool


def rbac(**rbac_values: Any) -> dict[str, Any]:
    return {"operator": {"rbac": {"scope": "namespace", **rbac_values}}}


STATIC_LISTS = [
    pytest.param([], id="empty static list renders no RoleBinding"),
    pytest.param(["staging"], id="one namespace"),
    pytest.param(["team-a", "team-b", "team-c", "production"], id="four namespaces keep their order"),
]


@pytest.mark.parametrize("allowed", STATIC_LISTS)
def test_static_list_gives_one_rolebinding_each_and_watch_namespace(
    helm: helm_tool.Helm, chart: Path, allowed: list[str]
) -> None:
    docs = helm.template(chart, values=rbac(allowedNamespaces=allowed))
    bindings = objects.of_kind(docs, "RoleBinding")
    served = [doc["metadata"]["namespace"] for doc in bindings if doc["roleRef"]["kind"] == "ClusterRole"]
    assert served == allowed
    env = objects.env(objects.named(docs, "Deployment", "toolhive-operator"))
    assert env["WATCH_NAMESPACE"] == ",".join(allowed)


SELECTOR_CASES = [
    pytest.param([], [], id="no selectors and no static list"),
    pytest.param(
        [{"matchLabels": {"toolhive.stacklok.dev/enabled": "true"}}],
        ["staging"],
        id="default label plus one static namespace",
    ),
    pytest.param(
        [
            {"matchLabels": {"team": "payments", "tier": "prod"}},
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["search", "ads"]}]},
            {
                "matchLabels": {"mcp": "on"},
                "matchExpressions": [
                    {"key": "quarantine", "operator": "DoesNotExist"},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "owner", "operator": "Exists"},
                ],
            },
        ],
        ["staging", "production"],
        id="three ORed selectors with every operator",
    ),
]


@pytest.mark.parametrize(("selectors", "allowed"), SELECTOR_CASES)
def test_discovery_object_carries_selectors_static_list_and_deny_list(
    helm: helm_tool.Helm, chart: Path, selectors: list[Any], allowed: list[str]
) -> None:
    values = rbac(
        allowedNamespaces=allowed,
        discovery={
            "enabled": True,
            "namespaceSelectors": selectors,
            "denyNamespaces": ["kube-system", "legacy"],
        },
    )
    docs = helm.template(chart, values=values)
    spec = objects.named(docs, "NamespaceDiscovery", "toolhive-operator")["spec"]
    assert spec == {
        "selectors": selectors,
        "namespaces": allowed,
        "denyNamespaces": ["kube-system", "legacy"],
    }
    assert [
        doc for doc in objects.of_kind(docs, "RoleBinding") if doc["roleRef"]["kind"] == "ClusterRole"
    ] == []


def test_an_empty_deny_list_is_rendered_as_empty(helm: helm_tool.Helm, chart: Path) -> None:
    docs = helm.template(chart, values=rbac(discovery={"enabled": True, "denyNamespaces": []}))
    assert objects.named(docs, "NamespaceDiscovery", "toolhive-operator")["spec"]["denyNamespaces"] == []


def schema_error(helm: helm_tool.Helm, chart: Path, values: dict[str, Any]) -> str:
    with pytest.raises(helm_tool.HelmError) as raised:
        helm.template(chart, values=values)
    return raised.value.stderr


BAD_VALUES = [
    pytest.param(
        {"operator": {"rbac": {"scope": "everywhere"}}},
        ["/operator/rbac/scope", "'cluster', 'namespace'"],
        id="unknown scope names the key and the choices",
    ),
    pytest.param(
        {"operator": {"rbac": {"scpoe": "namespace"}}},
        ["/operator/rbac", "'scpoe' not allowed"],
        id="typo in a key names the key",
    ),
    pytest.param({"operater": {}}, ["'operater' not allowed"], id="typo in a top-level section names it"),
    pytest.param(
        rbac(allowedNamespaces="staging,production"),
        ["/operator/rbac/allowedNamespaces", "want array"],
        id="allowedNamespaces as a string names the key",
    ),
    pytest.param(
        rbac(allowedNamespaces=["Team_A"]),
        ["/operator/rbac/allowedNamespaces/0"],
        id="invalid namespace name names the entry",
    ),
    pytest.param(
        rbac(discovery={"namespaceSelectors": [{"matchExpressions": [{"key": "t", "operator": "Matches"}]}]}),
        ["/operator/rbac/discovery/namespaceSelectors/0/matchExpressions/0/operator", "'In', 'NotIn'"],
        id="invalid selector operator names the expression",
    ),
    pytest.param(
        rbac(discovery={"namespaceSelectors": [{"matchExpressions": [{"key": "t", "operator": "In"}]}]}),
        ["/operator/rbac/discovery/namespaceSelectors/0/matchExpressions/0", "values"],
        id="In without values is refused",
    ),
    pytest.param(
        rbac(discovery={"namespaceSelectors": [{"matchLabels": {"toolhive.stacklok.dev/enabled": True}}]}),
        [
            "/operator/rbac/discovery/namespaceSelectors/0/matchLabels/toolhive.stacklok.dev~1enabled",
            "want string",
        ],
        id="unquoted true label value names the label",
    ),
    pytest.param(
        rbac(discovery={"namespaceSelectors": [{}]}),
        ["/operator/rbac/discovery/namespaceSelectors/0", "minProperties"],
        id="empty selector that would select everything is refused",
    ),
    pytest.param(
        rbac(discovery={"namespaceSelectors": [{"matchLabel": {"a": "b"}}]}),
        ["/operator/rbac/discovery/namespaceSelectors/0", "'matchLabel' not allowed"],
        id="typo inside a selector names it",
    ),
    pytest.param(
        {"telemetry": {"samplingRatio": 2}}, ["/telemetry/samplingRatio"], id="sampling ratio above 1"
    ),
    pytest.param({"telemetry": {"protocol": "grpc"}}, ["/telemetry/protocol"], id="unshipped OTLP protocol"),
    pytest.param({"operator": {"logLevel": "verbose"}}, ["/operator/logLevel"], id="unknown log level"),
    pytest.param(
        {"operator": {"healthPort": 0}}, ["/operator/healthPort"], id="health port off breaks probes"
    ),
    pytest.param(
        {"operator": {"replicaCount": "two"}},
        ["/operator/replicaCount", "want integer"],
        id="replicas as text",
    ),
]


@pytest.mark.parametrize(("values", "fragments"), BAD_VALUES)
def test_bad_values_fail_naming_the_key(
    helm: helm_tool.Helm, chart: Path, values: dict[str, Any], fragments: list[str]
) -> None:
    error = schema_error(helm, chart, values)
    for fragment in fragments:
        assert fragment in error, error


CROSS_FIELD = [
    pytest.param(
        {"operator": {"rbac": {"discovery": {"enabled": True}}}},
        "operator.rbac.discovery.enabled: true needs operator.rbac.scope: namespace",
        id="discovery in cluster scope",
    ),
    pytest.param(
        {"operator": {"rbac": {"namespaced": True}}},
        "operator.rbac.namespaced: true needs operator.rbac.scope: namespace",
        id="fully namespaced in cluster scope",
    ),
    pytest.param(
        rbac(namespaced=True, discovery={"enabled": True}),
        "operator.rbac.namespaced: true cannot be combined with operator.rbac.discovery.enabled",
        id="fully namespaced with discovery",
    ),
    pytest.param(
        rbac(allowedNamespaces=["kube-system"], discovery={"enabled": True}),
        'operator.rbac.allowedNamespaces: "kube-system" is also in operator.rbac.discovery.denyNamespaces',
        id="static namespace that the deny list would drop",
    ),
    pytest.param(
        {"operator": {"env": [{"name": "WATCH_NAMESPACE", "value": "x"}]}},
        "operator.env: WATCH_NAMESPACE is set by the chart",
        id="extra WATCH_NAMESPACE that would contradict the RBAC mode",
    ),
    pytest.param(
        {"operator": {"env": [{"name": "TOOLHIVE_OPERATOR__RUNNER_IMAGE", "value": "x"}]}},
        "operator.env: TOOLHIVE_OPERATOR__RUNNER_IMAGE is set by the chart",
        id="extra env that the chart sets",
    ),
    pytest.param(
        {**rbac(discovery={"enabled": True}), "discovery": {"env": [{"name": "POD_NAME", "value": "x"}]}},
        "discovery.env: POD_NAME is set by the chart",
        id="extra discovery env that the chart sets",
    ),
]


@pytest.mark.parametrize(("values", "message"), CROSS_FIELD)
def test_contradictory_values_fail_with_both_keys_named(
    helm: helm_tool.Helm, chart: Path, values: dict[str, Any], message: str
) -> None:
    assert message in schema_error(helm, chart, values)


def test_a_toolhive_values_file_still_installs(helm: helm_tool.Helm, chart: Path) -> None:
    toolhive_values = {
        "fullnameOverride": "toolhive-operator",
        "operator": {
            "features": {"experimental": False, "server": True, "registry": True, "virtualMCP": True},
            "replicaCount": 1,
            "image": "ghcr.io/stacklok/toolhive/operator:v0.44.0",
            "imagePullPolicy": "IfNotPresent",
            "toolhiveRunnerImage": "ghcr.io/stacklok/toolhive/proxyrunner:v0.44.0",
            "vmcpImage": "ghcr.io/stacklok/toolhive/vmcp:v0.44.0",
            "proxyHost": "0.0.0.0",
            "env": [{"name": "TOOLHIVE_SKIP_UPDATE_CHECK", "value": "true"}],
            "ports": [{"containerPort": 8080, "name": "metrics", "protocol": "TCP"}],
            "gc": {"gomemlimit": "110MiB", "gogc": 75},
            "autoscaling": {"enabled": False},
            "rbac": {"scope": "namespace", "allowedNamespaces": ["staging", "production"]},
            "serviceAccount": {"create": True, "name": "toolhive-operator", "annotations": {}, "labels": {}},
            "leaderElectionRole": {"name": "toolhive-operator-leader-election-role"},
        },
        "registryAPI": {"image": "ghcr.io/stacklok/thv-registry-api:v0.6.2"},
    }
    docs = helm.template(chart, values=toolhive_values)
    env = objects.env(objects.named(docs, "Deployment", "toolhive-operator"))
    assert env["WATCH_NAMESPACE"] == "staging,production"
    assert env["TOOLHIVE_SKIP_UPDATE_CHECK"] == "true"
    notes = helm.notes(chart, values=toolhive_values)
    assert "WARNING: ignored ToolHive values" in notes
    for key in ("operator.features", "operator.gc", "operator.vmcpImage", "registryAPI"):
        assert key in notes


def test_runner_image_pull_secrets_and_tuning_reach_the_operator(helm: helm_tool.Helm, chart: Path) -> None:
    values = {
        "operator": {
            "toolhiveRunnerImage": "registry.example/proxyrunner:v1",
            "defaultImagePullSecrets": ["regcred", "mirror"],
            "maxConcurrentReconciles": 16,
            "resyncSeconds": 0,
            "logLevel": "DEBUG",
            "logFormat": "text",
            "metricsPort": 9090,
            "healthPort": 9091,
            "leaderElection": {"enabled": False},
        }
    }
    docs = helm.template(chart, values=values)
    deployment = objects.named(docs, "Deployment", "toolhive-operator")
    env = objects.env(deployment)
    assert {name: value for name, value in env.items() if name.startswith("TOOLHIVE_")} == {
        "TOOLHIVE_RBAC__SCOPE": "cluster",
        "TOOLHIVE_OPERATOR__RUNNER_IMAGE": "registry.example/proxyrunner:v1",
        "TOOLHIVE_OPERATOR__IMAGE_PULL_SECRETS": "regcred,mirror",
        "TOOLHIVE_OPERATOR__MAX_CONCURRENT_RECONCILES": "16",
        "TOOLHIVE_OPERATOR__RESYNC_SECONDS": "0",
        "TOOLHIVE_LEADER_ELECTION__ENABLED": "false",
        "TOOLHIVE_OBSERVABILITY__LOG_LEVEL": "DEBUG",
        "TOOLHIVE_OBSERVABILITY__LOG_FORMAT": "text",
        "TOOLHIVE_OBSERVABILITY__METRICS_PORT": "9090",
        "TOOLHIVE_OBSERVABILITY__HEALTH_PORT": "9091",
    }
    ports = objects.container(deployment)["ports"]
    assert ports == [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "health", "containerPort": 9091, "protocol": "TCP"},
    ]
    assert [doc for doc in docs if "leader-election" in doc["metadata"]["name"]] == []


def test_metrics_port_zero_exposes_no_metrics_port(helm: helm_tool.Helm, chart: Path) -> None:
    deployment = objects.named(
        helm.template(chart, values={"operator": {"metricsPort": 0}}), "Deployment", "toolhive-operator"
    )
    assert [port["name"] for port in objects.container(deployment)["ports"]] == ["health"]


def test_telemetry_values_become_standard_otel_variables(helm: helm_tool.Helm, chart: Path) -> None:
    values = {
        **objects.DISCOVERY,
        "telemetry": {
            "enabled": True,
            "endpoint": "http://otel-collector.observability:4318",
            "samplingRatio": 0.25,
            "resourceAttributes": {"deployment.environment": "production", "cloud.region": "eu-west-1"},
        },
    }
    docs = helm.template(chart, values=values)
    for name, service in (
        ("toolhive-operator", "toolhive-operator"),
        ("toolhive-discovery", "toolhive-discovery"),
    ):
        env = objects.env(objects.named(docs, "Deployment", name))
        assert {key: value for key, value in env.items() if key.startswith("OTEL_")} == {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),"
            "service.version=0.1.0,cloud.region=eu-west-1,deployment.environment=production",
        }


def test_telemetry_off_disables_the_sdk(helm: helm_tool.Helm, chart: Path) -> None:
    env = objects.env(objects.named(helm.template(chart), "Deployment", "toolhive-operator"))
    assert env["OTEL_SDK_DISABLED"] == "true"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env


def test_extra_env_comes_after_the_downward_api_and_before_the_chart_variables(
    helm: helm_tool.Helm, chart: Path
) -> None:
    extra = [
        {
            "name": "OTEL_EXPORTER_OTLP_HEADERS",
            "valueFrom": {"secretKeyRef": {"name": "otlp", "key": "headers"}},
        },
        {"name": "TEAM_POD", "value": "$(POD_NAME)"},
    ]
    deployment = objects.named(
        helm.template(chart, values={"operator": {"env": extra}}), "Deployment", "toolhive-operator"
    )
    names = [entry["name"] for entry in objects.container(deployment)["env"]]
    assert names[:4] == ["POD_NAME", "POD_NAMESPACE", "OTEL_EXPORTER_OTLP_HEADERS", "TEAM_POD"]
    assert objects.container(deployment)["env"][2] == extra[0]


@pytest.mark.parametrize(
    "name", ["toolhive-operator", "toolhive-discovery"], ids=lambda n: f"{n} pod is hardened"
)
def test_pods_are_non_root_read_only_capability_free_bounded_and_probed(
    helm: helm_tool.Helm, chart: Path, name: str
) -> None:
    deployment = objects.named(helm.template(chart, values=objects.DISCOVERY), "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    container = objects.container(deployment)
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert "health" in [port["name"] for port in container["ports"]]
    env = objects.env(deployment)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_bring_your_own_service_accounts(helm: helm_tool.Helm, chart: Path) -> None:
    values = objects.merged(
        objects.DISCOVERY,
        {
            "operator": {"serviceAccount": {"create": False, "name": "platform-operator"}},
            "discovery": {"serviceAccount": {"create": False, "name": "platform-discovery"}},
        },
    )
    docs = helm.template(chart, values=values)
    assert objects.of_kind(docs, "ServiceAccount") == []
    operator = objects.named(docs, "Deployment", "toolhive-operator")
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operator"
    env = objects.env(operator)
    assert env["TOOLHIVE_DISCOVERY__SUBJECT_NAME"] == "platform-operator"
    discovery_binding = objects.named(docs, "ClusterRoleBinding", "toolhive-discovery")
    assert discovery_binding["subjects"][0]["name"] == "platform-discovery"


def test_images_and_pod_placement(helm: helm_tool.Helm, chart: Path) -> None:
    values = objects.merged(
        objects.DISCOVERY,
        {
            "operator": {
                "image": "registry.example/toolhive-operator:dev",
                "imagePullSecrets": [{"name": "regcred"}],
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "infra", "operator": "Exists"}],
                "podAnnotations": {"prometheus.io/scrape": "true"},
                "podLabels": {"team": "platform"},
                "replicaCount": 2,
            },
            "discovery": {"replicaCount": 2},
        },
    )
    docs = helm.template(chart, values=values)
    operator = objects.named(docs, "Deployment", "toolhive-operator")
    discovery = objects.named(docs, "Deployment", "toolhive-discovery")
    assert objects.container(operator)["image"] == "registry.example/toolhive-operator:dev"
    assert objects.container(discovery)["image"] == "registry.example/toolhive-operator:dev"
    pod = operator["spec"]["template"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "infra", "operator": "Exists"}]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    assert pod["metadata"]["labels"]["team"] == "platform"
    assert operator["spec"]["replicas"] == 2 and discovery["spec"]["replicas"] == 2
    selector = operator["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()

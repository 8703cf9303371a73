"""The proxy Service `mcp-<name>-proxy`."""

from __future__ import annotations

from builders_testkit import Golden, MakeServer

from toolhive.builders import BuildConfig, service


def test_the_service_exposes_proxy_port_named_http(make_server: MakeServer, config: BuildConfig) -> None:
    manifest = service.build_proxy_service(make_server(proxyPort=9090), config=config)
    assert manifest["metadata"]["name"] == "mcp-github-proxy"
    assert manifest["spec"]["type"] == "ClusterIP"
    assert manifest["spec"]["ports"] == [
        {"name": "http", "port": 9090, "targetPort": 9090, "protocol": "TCP"}
    ]


def test_session_affinity_comes_from_the_spec(make_server: MakeServer, config: BuildConfig) -> None:
    assert service.build_proxy_service(make_server(), config=config)["spec"]["sessionAffinity"] == "ClientIP"
    stateless = make_server(sessionAffinity="None")
    assert service.build_proxy_service(stateless, config=config)["spec"]["sessionAffinity"] == "None"


def test_service_overrides_add_labels_and_annotations(make_server: MakeServer, config: BuildConfig) -> None:
    overrides = {
        "proxyService": {
            "labels": {"expose": "yes", "app": "spoofed"},
            "annotations": {"cloud.google.com/neg": "{}"},
        }
    }
    manifest = service.build_proxy_service(make_server(resourceOverrides=overrides), config=config)
    assert manifest["metadata"]["labels"]["expose"] == "yes"
    assert manifest["metadata"]["labels"]["app"] == "mcpserver"
    assert manifest["metadata"]["annotations"] == {"cloud.google.com/neg": "{}"}
    assert manifest["spec"]["selector"]["app"] == "mcpserver"


def test_service_golden(make_server: MakeServer, config: BuildConfig, golden: Golden) -> None:
    golden.check("service.json", service.build_proxy_service(make_server(), config=config))

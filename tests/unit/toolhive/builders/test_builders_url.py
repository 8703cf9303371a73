"""`status.url`: ToolHive's in-cluster URL with the transport's path."""

from __future__ import annotations

from typing import Any

import pytest
from builders_testkit import MakeServer

from toolhive.builders import status


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        pytest.param(
            {}, "http://mcp-github-proxy.team-a.svc.cluster.local:8080/mcp", id="stdio defaults to /mcp"
        ),
        pytest.param(
            {"transport": "stdio", "proxyMode": "sse"},
            "http://mcp-github-proxy.team-a.svc.cluster.local:8080/sse#github",
            id="stdio behind an SSE proxy uses /sse#<name>",
        ),
        pytest.param(
            {"transport": "sse", "proxyPort": 9090},
            "http://mcp-github-proxy.team-a.svc.cluster.local:9090/sse#github",
            id="sse uses /sse#<name> on proxyPort",
        ),
        pytest.param(
            {"transport": "streamable-http"},
            "http://mcp-github-proxy.team-a.svc.cluster.local:8080/mcp",
            id="streamable-http uses /mcp",
        ),
    ],
)
def test_url_per_transport(make_server: MakeServer, spec: dict[str, Any], url: str) -> None:
    assert status.build_url(make_server(**spec)) == url

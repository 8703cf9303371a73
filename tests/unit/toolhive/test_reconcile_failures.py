"""A failing object is logged once (then at DEBUG) and its recovery once: no log line per retry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from discovery import kube
from toolhive import apply, reconcile
from toolhive.builders.inputs import BuildConfig
from toolhive.workqueue import Trigger


def test_a_failure_warns_once_repeats_quietly_and_recovery_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[Any] = [kube.ApiError(403, {"reason": "Forbidden"})] * 3 + [None]

    def lookup(res: kube.Resource, *, namespace: str, name: str) -> kube.Body | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    ctx = reconcile.Context(
        api=None,  # type: ignore[arg-type]
        applier=apply.Applier(None),  # type: ignore[arg-type]
        lookup=lookup,
        build=BuildConfig(),
    )
    caplog.set_level(logging.DEBUG, logger="toolhive.reconcile")
    results = [
        asyncio.run(reconcile.process(("team-a", "fetch"), (Trigger("test"),), ctx=ctx)) for _ in range(4)
    ]
    assert [result.retry for result in results] == [True, True, True, False]
    levels = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in levels] == ["WARNING", "DEBUG", "DEBUG", "INFO"]
    assert "with a static namespace list, delete MCPServers before their namespace" in levels[0][1]
    assert levels[3][1] == "reconcile recovered"
    assert len(ctx.failing) == 0

"""Fixtures for the bad input sweep: discovery's and the operator's integration fixtures, side by side.

Both suites' fixtures are re-exported here (the session `admin` comes from tests/integration/conftest.py),
so a test can run discovery, the operator, or both against the same API; `api_error` turns a rejected
write into (status, message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes

from tests.integration.discovery.conftest import (  # noqa: F401 (fixtures)
    discovery_rbac,
    label_key,
    namespaces,
    start_discovery,
)
from tests.integration.operator.conftest import operator_rbac, start_operator  # noqa: F401 (fixtures)


def api_error(write: Callable[[], Any]) -> tuple[int, str]:
    """Run a write that must be rejected; return the answer's status code and Status message."""
    try:
        write()
    except kubernetes.client.ApiException as exc:
        raw = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
        try:
            message = str(json.loads(raw).get("message", raw))
        except ValueError:
            message = raw
        return int(exc.status), message
    raise AssertionError("the write was accepted; it must be rejected")

"""Kubeconfig files for the loopback API (or any server URL and bearer token).

Called by `LoopbackApi.write_kubeconfig` and the test fixtures. Writes one file; never reads or
merges the user's own kubeconfig.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def build(
    server: str,
    token: str,
    *,
    namespace: str = "default",
    user: str = "loopback-user",
    ca_pem: str | None = None,
) -> dict[str, Any]:
    """A single-context kubeconfig document for `server` authenticating with `token` (CA given as PEM)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "loopback", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "loopback", "context": {"cluster": "loopback", "user": user, "namespace": namespace}}
        ],
        "current-context": "loopback",
    }


def write(
    path: str | os.PathLike[str],
    server: str,
    token: str,
    *,
    namespace: str = "default",
    ca_pem: str | None = None,
) -> Path:
    """Write a kubeconfig (mode 0600) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(build(server, token, namespace=namespace, ca_pem=ca_pem), sort_keys=False)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return target

"""Read a kubeconfig whose credentials are static (token, token file, client certificate, basic auth).

`kube.Api.connect` asks here first and falls back to the `kubernetes` package for anything else (exec
plugins, auth providers, several files merged through KUBECONFIG): that package's initialisation loads the
whole generated client, ~11 MiB of RSS in every process, for what is one YAML file in the common case
(kind, k3d, minikube, the loopback API, service-account kubeconfigs). Never writes the kubeconfig.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class NotStatic(Exception):
    """The kubeconfig needs more than this module reads (the caller falls back to the full loader)."""


@dataclasses.dataclass(frozen=True)
class Static:
    host: str
    ssl_context: ssl.SSLContext | None
    authorization: str | None  # a fixed header value, "Bearer ..." or "Basic ...", unless token_file
    token_file: Path | None  # read again from time to time: bound tokens rotate


# What this module understands; a user or cluster entry with any other key goes to the full loader, so an
# unknown credential is never silently ignored.
_USER_KEYS = frozenset(
    {"token", "tokenFile", "client-certificate", "client-certificate-data", "client-key", "client-key-data"}
    | {"username", "password"}
)
_CLUSTER_KEYS = frozenset(
    {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
    | {"tls-server-name", "extensions"}
)


def load(path: str, *, context: str | None = None) -> Static:
    """The server, TLS context and Authorization header of `context` (default: current-context)."""
    if os.pathsep in path:
        raise NotStatic("several kubeconfig files are merged")
    file = Path(path).expanduser()
    document = yaml.safe_load(file.read_text())
    if not isinstance(document, dict):
        raise NotStatic("not a kubeconfig mapping")
    entry = _section(document, "contexts", context or document.get("current-context"), "context")
    cluster = _section(document, "clusters", entry.get("cluster"), "cluster")
    user = _section(document, "users", entry.get("user"), "user")
    if set(cluster) - _CLUSTER_KEYS or set(user) - _USER_KEYS or cluster.get("tls-server-name"):
        raise NotStatic("credentials this loader does not read")
    base = file.parent
    host = str(cluster.get("server") or "").rstrip("/")
    if not host:
        raise NotStatic("no server")
    token_file = base / user["tokenFile"] if user.get("tokenFile") and not user.get("token") else None
    return Static(
        host=host,
        ssl_context=_tls(cluster, user, base, host),
        authorization=None if token_file else _authorization(user),
        token_file=token_file,
    )


def _section(document: Mapping[str, Any], section: str, name: object, field: str) -> Mapping[str, Any]:
    """`field` of the entry called `name` in the list `section` (a user entry may be empty)."""
    for item in document.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(field) or {}
            if not isinstance(value, dict):
                raise NotStatic(f"{section} entry {name!r} has no {field} mapping")
            return value
    raise NotStatic(f"no {section} entry named {name!r}")


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path, host: str) -> ssl.SSLContext | None:
    if not host.startswith("https"):
        return None
    ca_file = cluster.get("certificate-authority")
    ca_data = cluster.get("certificate-authority-data")
    context = ssl.create_default_context(
        cafile=str(base / ca_file) if ca_file else None,
        cadata=base64.b64decode(ca_data).decode() if ca_data else None,
    )
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    certificate = _pem(user, "client-certificate", base)
    key = _pem(user, "client-key", base)
    if certificate is not None:
        # `load_cert_chain` reads files only: inline data goes through a private temporary file, as the
        # official client does, removed as soon as it is loaded.
        with tempfile.TemporaryDirectory() as scratch:
            cert_path, key_path = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
            cert_path.write_bytes(certificate)
            if key is not None:
                key_path.write_bytes(key)
            context.load_cert_chain(str(cert_path), keyfile=str(key_path) if key is not None else None)
    return context


def _pem(user: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    if user.get(f"{key}-data"):
        return base64.b64decode(str(user[f"{key}-data"]))
    if user.get(key):
        return (base / str(user[key])).read_bytes()
    return None


def _authorization(user: Mapping[str, Any]) -> str | None:
    if user.get("token"):
        return f"Bearer {user['token']}"
    if user.get("username"):
        pair = f"{user['username']}:{user.get('password') or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None

"""A raw HTTP client for conformance tests: exact status codes, headers and bodies, any content type.

Reads server, CA and token from a kubeconfig through the official client's loader (so it also works
against a real cluster); speaks urllib3 directly, so nothing is deserialised into `V1*` models.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3


@dataclasses.dataclass
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""


class RawKube:
    """`RawKube(kubeconfig).get("/api/v1/namespaces")` -> Response(status, parsed JSON, headers)."""

    def __init__(self, kubeconfig: Path, *, token: str | None = None) -> None:
        import kubernetes

        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.base = cfg.host.rstrip("/")
        auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        self.headers: dict[str, str] = {}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        elif auth:
            self.headers["Authorization"] = auth if auth.lower().startswith("bearer ") else f"Bearer {auth}"
        self.pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl and self.base.startswith("https") else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
            maxsize=4,
        )

    def as_token(self, token: str | None) -> RawKube:
        """The same server with another bearer token (None: no Authorization header at all)."""
        other = object.__new__(RawKube)
        other.base, other.pool = self.base, self.pool
        other.headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return other

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ctype: str = "application/json",
        query: Mapping[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        url = self.base + path + (("?" + urlencode(query)) if query else "")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = ctype
        resp = self.pool.request(method, url, body=data, headers=headers, timeout=30, retries=False)
        text = resp.data.decode()
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Response(resp.status, parsed, dict(resp.headers))

    def get(self, path: str, **query: Any) -> Response:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, ctype: str = "application/merge-patch+json", **kw: Any) -> Response:
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("DELETE", path, body, **kw)

    def watch(self, path: str, *, timeout: float = 10, **query: Any) -> Iterator[dict[str, Any]]:
        """Stream watch events (decoded) until the server ends the stream or `timeout` passes."""
        params = {"watch": "true", **query}
        url = self.base + path + "?" + urlencode(params)
        resp = self.pool.request(
            "GET",
            url,
            headers=self.headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=timeout),
            retries=False,
        )
        try:
            if resp.status != 200:
                yield {"type": "HTTP", "status": resp.status, "object": json.loads(resp.read() or b"null")}
                return
            buffer = b""
            for chunk in resp.stream(1024, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.close()  # never hand a half-read stream back to the pool

"""The loopback Kubernetes API: an aiohttp server on 127.0.0.1 in its own thread and event loop.

Used by the tests, the benchmarks (in a process of their own: `remote.LoopbackProcess`) and the demo
(`LoopbackApi`, `toolhive-operator loopback`). It
answers kopf, the official `kubernetes` clients and kubectl with the documented API semantics:
discovery; built-in kinds and CRDs (structural-schema pruning, defaulting, validation, CEL rules; several
served versions; /status); uid, generation, resourceVersion; Status errors 400/401/403/404/409/410/
415/422; PUT, merge, JSON and strategic merge patches, server-side apply (ownership approximated,
see `_fields`); list/watch with label and field selectors, pagination, resume, BOOKMARKs, 410 Gone,
selector transitions; finalizers, namespace termination, ownerReference garbage collection; bearer
tokens, TokenRequest and RBAC (`_authz`) with escalation checks and access reviews; fault injection
and a request log.

Not implemented (deliberately): protobuf and Table output; workload controllers (Deployments never
get ReplicaSets or Pods; status stays what clients write); admission webhooks, ValidatingAdmissionPolicy,
CEL beyond the subset in `_cel` (rules outside it are skipped), `format` checks, list-type uniqueness;
CRD conversion (versions share storage, only apiVersion changes); scale, exec, attach, log and proxy
subresources; dryRun except on create; impersonation; list snapshots (continue tokens read current
state, not the state at the first page); events.k8s.io and core Events are separate stores; aggregated
discovery (clients fall back to the legacy documents); graceful Pod deletion; RBAC checks on
`blockOwnerDeletion`; OpenAPI schemas (/openapi/v3 lists paths and parameters only; no /openapi/v2);
strict field validation of built-in kinds below the top level and metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import math
import os
import re
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import yaml
from aiohttp import web

from toolhive.testing import _authz, _faults, _resources, _selectors, _store, _tls, _validation, kubeconfig

T = TypeVar("T")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_JSON = "application/json"
_TICK = b"tick"  # queued by a watch stream's timer (compared by identity: never a real event line)
_LOGGED = web.RequestKey("loopback_logged", bool)  # already in the request log
_ATTRS = web.RequestKey("loopback_attrs", _authz.RequestAttributes)  # its authorization attributes
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+loopback",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_store.encode(body),
        status=status,
        content_type=_JSON,
        headers=headers,
    )


def _object_response(store: _store.Store, obj: _store.Obj, *, status: int = 200) -> web.Response:
    """A written object's response: the bytes its watch events embedded when there were any."""
    return web.Response(body=store.encode(obj), status=status, content_type=_JSON)


def _error(exc: _store.ApiStatusError) -> web.Response:
    return _json_response(exc.body(), status=exc.code, headers=exc.headers or None)


def _decode_yaml(raw: bytes) -> Any:
    """A YAML body (apply configurations, kubectl's YAML): JSON first, libyaml otherwise.

    JSON is YAML, and clients send apply configurations as JSON: decoding them with the JSON parser gives
    the same document (and numbers as the API server's YAML-to-JSON step reads them, e.g. `1e3`) at a
    fraction of the cost of a YAML parser. Anything else goes to the (C, when available) safe loader.
    """
    with contextlib.suppress(ValueError):  # UnicodeDecodeError is a ValueError: YAML reports it below
        text = raw.decode("utf-8")
        if text.lstrip().startswith("{"):
            # NaN and Infinity are not JSON (Python's parser accepts them); YAML reads them as strings.
            return _APPLY_DECODER.decode(text)
    try:
        return yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise _store.bad_request(f"error converting YAML to JSON: {exc}") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# One decoder for every apply body (json.loads with an option builds a new decoder and scanner per call).
_APPLY_DECODER = json.JSONDecoder(parse_constant=_not_json)


def _not_found_path() -> _store.ApiStatusError:
    return _store.ApiStatusError(
        404, "NotFound", "the server could not find the requested resource", details={}
    )


def _tls_context() -> ssl.SSLContext:
    """A server context with the fixed loopback certificate (ssl wants files, so write them once)."""
    directory = Path(tempfile.mkdtemp(prefix="loopback-tls-"))
    cert, key = directory / "tls.crt", directory / "tls.key"
    cert.write_text(_tls.CERT_PEM)
    key.write_text(_tls.KEY_PEM)
    key.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class _Route:
    """A parsed resource URL: /api/v1/... or /apis/<group>/<version>/..."""

    def __init__(self, group: str, version: str, rest: list[str]) -> None:
        self.group = group
        self.version = version
        self.namespace = ""
        self.plural = ""
        self.name = ""
        self.subresource = ""
        self.namespaced_path = False
        self.watch_prefix = False
        if rest and rest[0] == "watch":
            self.watch_prefix = True
            rest = rest[1:]
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            self.namespaced_path = True
            self.namespace = rest[1]
            rest = rest[2:]
        self.valid = 1 <= len(rest) <= 3
        if self.valid:
            self.plural = rest[0]
            self.name = rest[1] if len(rest) > 1 else ""
            self.subresource = rest[2] if len(rest) > 2 else ""


class LoopbackApi:
    """A strict, in-process Kubernetes API for tests and demos (context manager; thread-safe facade).

    `rbac=True` (the default) authenticates every request (401 without a valid bearer token) and
    authorizes it with RBAC; `rbac=False` treats every request as the admin user. The server listens on
    plain HTTP (`http_url`) and on HTTPS (`https_url`, a fixed self-signed certificate whose CA goes into
    the kubeconfig: kubectl never sends a bearer token over plain HTTP); `tls` picks which one `url` and
    kubeconfigs use by default. `history` bounds the per-resource event history (older
    watch resourceVersions get 410 Gone); `bookmark_interval` is how often idle watches that allow
    bookmarks get a BOOKMARK.
    """

    def __init__(
        self,
        *,
        rbac: bool = True,
        history: int = 10000,
        bookmark_interval: float = 5.0,
        port: int = 0,
        anonymous: bool = False,
        tls: bool = False,
    ) -> None:
        self.rbac = rbac
        self.bookmark_interval = bookmark_interval
        self.admin_token = secrets.token_urlsafe(24)
        self.authenticator = _authz.Authenticator(anonymous=anonymous)
        self.authenticator.add_token(self.admin_token, _authz.UserInfo("admin", ("system:masters",)))
        self._history = history
        self._port = port
        self.tls = tls
        self._store: _store.Store | None = None
        self.authorizer: _authz.Authorizer | None = None
        self.requests = _faults.RequestLog()
        self.faults = _faults.Faults(self._drop_watches)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self.url = ""  # the HTTPS one with tls=True, else the plain HTTP one
        self.http_url = ""
        self.https_url = ""

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LoopbackApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LoopbackApi:
        """Start the server thread; returns once the port is bound and bootstrap objects exist."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="loopback-kube-api", daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        if self._startup_error is not None:
            raise RuntimeError("loopback API failed to start") from self._startup_error
        if not self.url:
            raise RuntimeError("loopback API did not start within 30 seconds")
        return self

    def stop(self) -> None:
        """Close every watch, stop the server and join its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to the starting thread
            self._startup_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        store = _store.Store(history=self._history)
        self._store = store
        self.authorizer = _authz.Authorizer(store)
        store.on_removed.append(self._on_removed)
        for name in _store.SYSTEM_NAMESPACES:
            store.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for obj in _authz.bootstrap_objects():
            store.seed(obj)
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        # One server, two listeners: plain HTTP (cheap for thousands of watches) and HTTPS (for kubectl,
        # which never sends a bearer token over plain HTTP). `port` applies to the one `tls` picks.
        ports = {}
        for secure in (False, True):
            wanted = self._port if secure == self.tls else 0
            context = _tls_context() if secure else None
            site = web.TCPSite(self._runner, "127.0.0.1", wanted, backlog=4096, ssl_context=context)
            await site.start()
            server = site._server  # the bound socket tells us the random port
            assert server is not None
            ports[secure] = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.http_url = f"http://127.0.0.1:{ports[False]}"
        self.https_url = f"https://127.0.0.1:{ports[True]}"
        self.url = self.https_url if self.tls else self.http_url

    async def _shutdown(self) -> None:
        if self._store is not None:
            for watcher in list(self._store.open_watchers()):
                watcher.close()
        if self._runner is not None:
            # Idle keep-alive connections would outlive the loop (a TLS close waits for the client's
            # close_notify): abort them first and let their connection_lost callbacks run.
            server = self._runner.server
            for handler in list(server.connections) if server is not None else ():
                if handler.transport is not None:
                    handler.transport.abort()
            for _ in range(3):
                await asyncio.sleep(0)
            await self._runner.cleanup()

    # --- test-thread helpers --------------------------------------------------------------------

    def call(self, fn: Callable[[_store.Store], T]) -> T:
        """Run `fn(store)` on the server thread and return its result (for inspection in tests)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("loopback API is not running")

        async def run() -> T:
            assert self._store is not None
            return fn(self._store)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def compact(self) -> None:
        """Forget the watch history of every resource: older resourceVersions now get 410 Gone."""
        self.call(lambda store: store.compact())

    def open_watches(self) -> dict[str, int]:
        """Open watch streams by resource plural."""

        def count(store: _store.Store) -> dict[str, int]:
            out: dict[str, int] = {}
            for watcher in store.open_watchers():
                out[watcher.rt.plural] = out.get(watcher.rt.plural, 0) + 1
            return out

        return self.call(count)

    def add_user(self, name: str, groups: tuple[str, ...] = (), *, token: str | None = None) -> str:
        """Register a static bearer token for a plain user; returns the token."""
        token = token or secrets.token_urlsafe(24)
        self.authenticator.add_token(token, _authz.UserInfo(name, groups))
        return token

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        *,
        token: str | None = None,
        namespace: str = "default",
        tls: bool | None = None,
    ) -> Path:
        """Write a kubeconfig for this server (admin token unless `token` is given); returns the path.

        `tls=True` points it at the HTTPS listener with the CA included (what kubectl needs), `False` at
        plain HTTP; the default follows the server's `tls`.
        """
        secure = self.tls if tls is None else tls
        url = self.https_url if secure else self.http_url
        ca = _tls.CERT_PEM if secure else None
        return kubeconfig.write(path, url, token or self.admin_token, namespace=namespace, ca_pem=ca)

    def _drop_watches(self, pattern: re.Pattern[str] | None) -> int:
        def drop(store: _store.Store) -> int:
            dropped = 0
            for watcher in list(store.open_watchers()):
                if pattern is None or pattern.search(watcher.path):
                    store.unwatch(watcher)
                    watcher.close()
                    dropped += 1
            return dropped

        return self.call(drop)

    def _on_removed(self, rt: _resources.ResourceType, obj: Mapping[str, Any]) -> None:
        if rt.kind == "ServiceAccount" and not rt.group:
            meta = obj["metadata"]
            self.authenticator.forget_serviceaccount(meta["namespace"], meta["name"])

    # --- request handling -----------------------------------------------------------------------

    @property
    def store(self) -> _store.Store:
        assert self._store is not None
        return self._store

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        user = self._authenticate(request)
        if user is None:
            self.requests.record(_faults.Request("", path, "", 401, query=request.query_string))
            return _json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                },
                status=401,
            )
        attrs, route = self._attributes(request, user)
        request[_ATTRS] = attrs
        fault, delay = self.faults.take(attrs.verb, path, user.name)
        if delay:
            await asyncio.sleep(delay)
        status = 500
        try:
            if fault is not None:
                exc = _store.ApiStatusError(
                    fault.status, _faults.Faults.reason(fault.status), fault.message, details={}
                )
                if fault.retry_after is not None:
                    # HTTP delay-seconds are whole seconds, and the API server only ever sends whole ones.
                    seconds = math.ceil(fault.retry_after)
                    exc.headers["Retry-After"] = str(seconds)
                    exc.details["retryAfterSeconds"] = seconds
                raise exc
            if self.rbac and self.authorizer is not None and not self.authorizer.authorize(attrs):
                body = self.authorizer.forbidden_status(attrs)
                status = 403
                return _json_response(body, status=403)
            response = await self._dispatch(request, user, attrs, route)
            status = response.status
            return response
        except _store.ApiStatusError as exc:
            status = exc.code
            return _error(exc)
        finally:
            if not request.get(_LOGGED):
                self._log(request, attrs, status)

    def _log(self, request: web.Request, attrs: _authz.RequestAttributes, status: int) -> None:
        """Record a request once: when it is answered, or when its watch stream starts."""
        request[_LOGGED] = True
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        self.requests.record(
            _faults.Request(
                attrs.verb,
                request.path,
                attrs.user.name,
                status,
                resource,
                attrs.namespace,
                attrs.name,
                request.query_string,
            )
        )

    def _authenticate(self, request: web.Request) -> _authz.UserInfo | None:
        if not self.rbac:
            return self.authenticator.authenticate(request.headers.get("Authorization")) or _authz.UserInfo(
                "admin", ("system:masters", "system:authenticated")
            )
        return self.authenticator.authenticate(request.headers.get("Authorization"))

    def _attributes(
        self, request: web.Request, user: _authz.UserInfo
    ) -> tuple[_authz.RequestAttributes, _Route | None]:
        parts = [p for p in request.path.split("/") if p]
        route: _Route | None = None
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            route = _Route("", "v1", parts[2:])
        elif len(parts) >= 4 and parts[0] == "apis":
            route = _Route(parts[1], parts[2], parts[3:])
        if route is None or not route.valid:
            verb = {
                "GET": "get",
                "HEAD": "get",
                "POST": "post",
                "PUT": "put",
                "PATCH": "patch",
                "DELETE": "delete",
            }.get(request.method, request.method.lower())
            return _authz.RequestAttributes(
                user=user, verb=verb, api_group="", resource="", path=request.path
            ), route
        watch = route.watch_prefix or request.query.get("watch") in ("true", "1")
        method = request.method
        if method in ("GET", "HEAD"):
            verb = "watch" if watch else ("get" if route.name else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if route.name else "deletecollection"
        else:
            verb = method.lower()
        namespace = route.namespace
        name = route.name
        if route.plural == "namespaces" and not route.namespaced_path:
            namespace = route.name  # a Namespace is authorized in its own namespace, as upstream does
        if verb in ("list", "watch") and not name:
            field_name = self._pinned_name(request)
            if field_name:
                name = field_name
        return (
            _authz.RequestAttributes(
                user=user,
                verb=verb,
                api_group=route.group,
                resource=route.plural,
                subresource=route.subresource,
                namespace=namespace,
                name=name,
            ),
            route,
        )

    @staticmethod
    def _pinned_name(request: web.Request) -> str:
        """`fieldSelector=metadata.name=x` on list/watch is authorized as that name (upstream does too)."""
        text = request.query.get("fieldSelector", "")
        m = re.fullmatch(r"\s*metadata\.name\s*==?\s*([^,\s]+)\s*", text)
        return m.group(1) if m else ""

    async def _dispatch(
        self,
        request: web.Request,
        user: _authz.UserInfo,
        attrs: _authz.RequestAttributes,
        route: _Route | None,
    ) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if route is None or not route.valid:
            return self._non_resource(request, path)
        return await self._resource(request, user, attrs, route)

    # --- discovery and other non-resource URLs ---------------------------------------------------

    def _non_resource(self, request: web.Request, path: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise _store.ApiStatusError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        store = self.store
        if path == "/version":
            return _json_response(SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            host = request.host or self.url.removeprefix("http://")
            return _json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
                }
            )
        if path == "/api/v1":
            return self._resource_list("", "v1")
        groups = store.groups()
        if path == "/apis":
            return _json_response(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [_resources.group_discovery(g, vs) for g, vs in sorted(groups.items()) if g],
                }
            )
        parts = path.split("/")[1:]
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups and parts[1]:
            body = {
                "kind": "APIGroup",
                "apiVersion": "v1",
                **_resources.group_discovery(parts[1], groups[parts[1]]),
            }
            return _json_response(body)
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], ()):
            return self._resource_list(parts[1], parts[2])
        if path == "/openapi/v3":
            return _json_response({"paths": self._openapi_index()})
        if path.startswith("/openapi/v3/"):
            gv_path = path.removeprefix("/openapi/v3/")
            if gv_path in self._openapi_index():
                return _json_response(self._openapi_document(gv_path))
        raise _not_found_path()

    def _openapi_index(self) -> dict[str, Any]:
        """`/openapi/v3`: one document per group-version (kubectl learns server-side validation there)."""
        out: dict[str, Any] = {}
        for group, versions in self.store.groups().items():
            for version in versions:
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={self.store.rv:016X}"}
        return out

    def _openapi_document(self, gv_path: str) -> dict[str, Any]:
        """A paths-only OpenAPI v3 document: which operations exist per kind, with their query parameters.

        It carries no schemas: clients that need them (kubectl's client-side validation) fall back to
        server-side field validation, which this server performs (`fieldValidation`).
        """
        parts = gv_path.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        paths: dict[str, Any] = {}
        params = [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
        ]
        for rt in self.store.resource_types(group, version):
            if rt.virtual:
                continue
            gvk = {"group": group, "version": version, "kind": rt.kind}
            scope = "/namespaces/{namespace}" if rt.namespaced else ""
            base = f"/{gv_path}{scope}/{rt.plural}"
            operation = {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {}},
            }
            paths[f"{base}/{{name}}"] = {
                verb: dict(operation, operationId=f"{verb}{rt.kind}")
                for verb in ("get", "put", "patch", "delete")
            }
            paths[base] = {
                verb: dict(operation, operationId=f"{verb}{rt.kind}List") for verb in ("get", "post")
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths,
            "components": {},
        }

    def _resource_list(self, group: str, version: str) -> web.Response:
        resources: list[dict[str, Any]] = []
        for rt in sorted(self.store.resource_types(group, version), key=lambda r: r.plural):
            resources.extend(rt.discovery_entries())
        return _json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources,
            }
        )

    # --- resources ------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type or _JSON
        if not raw:
            return None
        if ctype in ("application/yaml", "application/apply-patch+yaml"):
            return _decode_yaml(raw)
        if ctype == "application/vnd.kubernetes.protobuf":
            raise _store.ApiStatusError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",  # noqa: E501
            )
        try:
            # As Go's encoding/json: invalid UTF-8 inside strings becomes U+FFFD, not a decode error (so a
            # label with such a byte is a 422 naming the field, as from a real API server).
            return json.loads(raw.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise _store.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    def _manager(self, request: web.Request, *, apply: bool) -> str:
        """The field manager of a write: the query's, else derived from the User-Agent (as upstream)."""
        manager = request.query.get("fieldManager", "")
        errors: list[_validation.FieldError] = []
        if apply and not manager:
            errors.append(_validation.required("fieldManager", "is required for apply patch"))
        if len(manager) > 128:
            errors.append(
                _validation.FieldError(
                    "fieldManager", "FieldValueTooLong", "Too long: may not be more than 128 bytes"
                )
            )
        if request.method == "PATCH" and not apply and "force" in request.query:
            errors.append(_validation.forbidden("force", "may not be specified for non-apply patch"))
        if errors:
            kind = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(request.method, "PatchOptions")
            options = _resources.ResourceType("meta.k8s.io", "v1", kind.lower(), kind, False)
            raise _store.invalid(options, "", errors)
        if manager:
            return manager
        agent = request.headers.get("User-Agent", "unknown")
        return agent.split("/", 1)[0] or "unknown"

    def _admit(self, user: _authz.UserInfo, route: _Route) -> _store.Admit | None:
        if not self.rbac or self.authorizer is None or route.group != "rbac.authorization.k8s.io":
            return None
        authorizer = self.authorizer

        def admit(rt: _resources.ResourceType, obj: _store.Obj, old: _store.Obj | None) -> None:
            denial = authorizer.review_escalation(user, obj, old=old, request_name=route.name or None)
            if denial is not None:
                exc = _store.ApiStatusError(denial.code, denial.reason, denial.message)
                exc.details = denial.status().get("details", {})
                raise exc

        return admit

    async def _resource(
        self, request: web.Request, user: _authz.UserInfo, attrs: _authz.RequestAttributes, route: _Route
    ) -> web.StreamResponse:
        store = self.store
        rt = store.resolve(route.group, route.version, route.plural)
        if rt is None or (route.namespaced_path and not rt.namespaced):
            raise _not_found_path()
        if rt.virtual:
            if request.method != "POST" or route.name:
                raise _store.ApiStatusError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            return self._review(rt, user, await self._body(request))
        query = request.query
        namespace = route.namespace
        method = request.method
        strict = query.get("fieldValidation") == "Strict"
        if route.subresource:
            return await self._subresource(request, user, rt, route)
        if not route.name:
            if method in ("GET", "HEAD"):
                return await self._list_or_watch(request, rt, route, watch=attrs.verb == "watch")
            if method == "POST":
                if rt.namespaced and not route.namespaced_path:
                    raise _store.ApiStatusError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                body = await self._body(request)
                created = store.create(
                    rt,
                    namespace,
                    body,
                    manager=self._manager(request, apply=False),
                    admit=self._admit(user, route),
                    strict=strict,
                    dry_run=query.get("dryRun") == "All",
                )
                return _object_response(store, created, status=201)
            if method == "DELETE":
                if rt.namespaced and not route.namespaced_path:
                    raise _store.ApiStatusError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                return self._delete_collection(request, rt, route, await self._body(request))
            raise _store.ApiStatusError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if rt.namespaced and not route.namespaced_path:
            raise _not_found_path()
        name = route.name
        if method in ("GET", "HEAD"):
            if attrs.verb == "watch":
                return await self._list_or_watch(request, rt, route, watch=True, name=name)
            return _json_response(store.get(rt, namespace, name))
        if method == "PUT":
            body = await self._body(request)
            updated = store.update(
                rt,
                namespace,
                name,
                body,
                status_write=False,
                manager=self._manager(request, apply=False),
                admit=self._admit(user, route),
                strict=strict,
            )
            return _object_response(store, updated)
        if method == "PATCH":
            return await self._patch(request, user, rt, route, status_write=False)
        if method == "DELETE":
            body = await self._body(request) or {}
            options = dict(body) if isinstance(body, Mapping) else {}
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            removed, obj = store.delete(rt, namespace, name, options=options)
            if removed and not rt.crd and rt.kind != "Pod":
                details: dict[str, Any] = {"name": name}
                if rt.group:
                    details["group"] = rt.group
                details["kind"] = rt.plural
                details["uid"] = obj["metadata"]["uid"]
                return _json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    }
                )
            return _json_response(obj)
        raise _store.ApiStatusError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    async def _patch(
        self,
        request: web.Request,
        user: _authz.UserInfo,
        rt: _resources.ResourceType,
        route: _Route,
        *,
        status_write: bool,
    ) -> web.Response:
        ctype = request.content_type
        if ctype not in _PATCH_TYPES:
            raise _store.ApiStatusError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(_PATCH_TYPES)}",  # noqa: E501
            )
        apply = ctype == "application/apply-patch+yaml"
        force_raw = request.query.get("force")
        body = await self._body(request)
        if apply and not status_write and self.store.lookup(rt, route.namespace, route.name) is None:
            # An apply that creates is authorized as a create too (upstream's create-on-update check).
            asked = request[_ATTRS]
            creating = _authz.RequestAttributes(
                asked.user,
                "create",
                asked.api_group,
                asked.resource,
                subresource=asked.subresource,
                namespace=asked.namespace,
                name=asked.name,
                path=asked.path,
            )
            if self.rbac and self.authorizer is not None and not self.authorizer.authorize(creating):
                status = self.authorizer.forbidden_status(creating)
                raise _store.ApiStatusError(
                    403, "Forbidden", status["message"], details=status.get("details")
                )
        code, obj = self.store.patch(
            rt,
            route.namespace,
            route.name,
            body,
            content_type=ctype,
            status_write=status_write,
            manager=self._manager(request, apply=apply),
            force=force_raw in ("true", "1"),
            admit=self._admit(user, route),
            strict=request.query.get("fieldValidation") == "Strict",
            handed_over=True,  # decoded for this call only
        )
        return _object_response(self.store, obj, status=code)

    async def _subresource(
        self, request: web.Request, user: _authz.UserInfo, rt: _resources.ResourceType, route: _Route
    ) -> web.StreamResponse:
        store = self.store
        method = request.method
        sub = route.subresource
        if sub == "status" and rt.status:
            if method == "GET":
                return _json_response(store.get(rt, route.namespace, route.name))
            if method == "PUT":
                body = await self._body(request)
                return _object_response(
                    store,
                    store.update(
                        rt,
                        route.namespace,
                        route.name,
                        body,
                        status_write=True,
                        manager=self._manager(request, apply=False),
                    ),
                )
            if method == "PATCH":
                return await self._patch(request, user, rt, route, status_write=True)
        if sub == "token" and rt.kind == "ServiceAccount" and method == "POST":
            return self._token_request(rt, route, await self._body(request))
        if sub == "finalize" and rt.kind == "Namespace" and method == "PUT":
            return _json_response(self._finalize(rt, route.name, await self._body(request)))
        raise _not_found_path()

    def _finalize(self, rt: _resources.ResourceType, name: str, body: Any) -> _store.Obj:
        spec = (body or {}).get("spec") if isinstance(body, Mapping) else None
        finalizers = (spec or {}).get("finalizers") or []
        return self.store.set_namespace_finalizers(name, [str(f) for f in finalizers])

    def _token_request(self, rt: _resources.ResourceType, route: _Route, body: Any) -> web.Response:
        store = self.store
        if store.lookup(rt, route.namespace, route.name) is None:
            store.check_namespace(rt, route.namespace, route.name, creating=False)
            raise _store.not_found(rt, route.name)
        body = body if isinstance(body, dict) else {}
        spec = dict(body.get("spec") or {})
        seconds = spec.get("expirationSeconds", 3600)
        token_rt = _resources.ResourceType(
            "authentication.k8s.io", "v1", "tokenrequests", "TokenRequest", True
        )
        if not isinstance(seconds, int) or seconds < 600:
            raise _store.invalid(
                token_rt,
                route.name,
                [
                    _validation.invalid(
                        "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"
                    )
                ],
            )
        token = self.authenticator.issue_serviceaccount_token(route.namespace, route.name)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        spec.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
        spec["expirationSeconds"] = seconds
        spec.setdefault("boundObjectRef", None)
        return _json_response(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": route.name, "namespace": route.namespace, "creationTimestamp": None},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
            },
            status=201,
        )

    def _review(self, rt: _resources.ResourceType, user: _authz.UserInfo, body: Any) -> web.Response:
        if not isinstance(body, dict) or body.get("kind") != rt.kind:
            raise _store.bad_request(f"Object 'Kind' is missing or is not {rt.kind}")
        spec = body.get("spec") or {}
        out = dict(body)
        out.setdefault("metadata", {})["creationTimestamp"] = None
        if rt.kind == "SelfSubjectReview":
            out["status"] = {"userInfo": {"username": user.name, "groups": list(user.groups)}}
            return _json_response(out, status=201)
        authorizer = self.authorizer
        assert authorizer is not None
        if rt.kind == "SelfSubjectRulesReview":
            out["status"] = authorizer.rules_review(user, str(spec.get("namespace") or ""))
            return _json_response(out, status=201)
        res: Mapping[str, Any] = spec.get("resourceAttributes") or {}
        nonres: Mapping[str, Any] = spec.get("nonResourceAttributes") or {}
        if bool(res) == bool(nonres):
            raise _store.invalid(
                rt,
                "",
                [
                    _validation.invalid(
                        "spec.resourceAttributes",
                        None,
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )
                ],
            )
        if res:
            attrs = _authz.RequestAttributes(
                user=user,
                verb=str(res.get("verb", "")),
                api_group=str(res.get("group", "")),
                resource=str(res.get("resource", "")),
                subresource=str(res.get("subresource", "")),
                namespace=str(res.get("namespace", "")),
                name=str(res.get("name", "")),
            )
        else:
            attrs = _authz.RequestAttributes(
                user=user,
                verb=str(nonres.get("verb", "")),
                api_group="",
                resource="",
                path=str(nonres.get("path", "")),
            )
        decision = authorizer.decide(attrs) if self.rbac else _authz.Decision(True)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        out["status"] = status
        return _json_response(out, status=201)

    def _selectors(
        self, request: web.Request, rt: _resources.ResourceType
    ) -> tuple[_selectors.LabelSelector, _selectors.FieldSelector]:
        try:
            labels = _selectors.parse_label_selector(request.query.get("labelSelector"))
            fields = _selectors.parse_field_selector(
                request.query.get("fieldSelector"),
                allowed=rt.field_selectors
                if rt.namespaced
                else rt.field_selectors - {"metadata.namespace"} | ({"metadata.name"}),
                crd=bool(rt.crd),
            )
        except _selectors.SelectorError as exc:
            raise _store.bad_request(str(exc)) from None
        return labels, fields

    def _delete_collection(
        self, request: web.Request, rt: _resources.ResourceType, route: _Route, body: Any
    ) -> web.Response:
        labels, fields = self._selectors(request, rt)
        store = self.store
        listing = store.list_objects(
            rt, route.namespace if rt.namespaced else None, labels=labels, fields=fields
        )
        options = dict(body) if isinstance(body, Mapping) else {}
        items = []
        for item in listing["items"]:
            meta = item["metadata"]
            with contextlib.suppress(_store.ApiStatusError):
                items.append(store.delete(rt, meta.get("namespace", ""), meta["name"], options=options)[1])
        listing["items"] = items
        listing["metadata"] = {"resourceVersion": str(store.rv)}
        return _json_response(listing)

    async def _list_or_watch(
        self, request: web.Request, rt: _resources.ResourceType, route: _Route, *, watch: bool, name: str = ""
    ) -> web.StreamResponse:
        query = request.query
        labels, fields = self._selectors(request, rt)
        if name:
            fields = _selectors.FieldSelector((*fields.terms, ("metadata.name", True, name)))
        namespace = route.namespace if route.namespaced_path else None
        send_initial = query.get("sendInitialEvents") in ("true", "1")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        if send_initial:
            problems = []
            if not watch:
                problems.append("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list")
            else:
                if query.get("resourceVersionMatch") != "NotOlderThan":
                    problems.append(
                        "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"  # noqa: E501
                    )
                if not bookmarks:
                    problems.append(
                        "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"  # noqa: E501
                    )
            if problems:
                summary = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
                raise _store.ApiStatusError(
                    422,
                    "Invalid",
                    f'ListOptions.meta.k8s.io "" is invalid: {summary}',
                    details={"group": "meta.k8s.io", "kind": "ListOptions"},
                )
        if not watch:
            try:
                limit = int(query.get("limit") or 0)
            except ValueError:
                raise _store.bad_request(
                    f'limit: Invalid value: "{query.get("limit")}": must be an integer'
                ) from None
            if limit < 0:
                raise _store.bad_request("limit: Invalid value: must be non-negative")
            return _json_response(
                self.store.list_objects(
                    rt,
                    namespace,
                    labels=labels,
                    fields=fields,
                    limit=limit,
                    continue_token=query.get("continue", ""),
                )
            )
        try:
            timeout = float(query.get("timeoutSeconds") or 1800)
        except ValueError:
            raise _store.bad_request("timeoutSeconds: Invalid value: must be an integer") from None
        store = self.store
        watcher = store.watch(
            rt,
            namespace,
            labels=labels,
            fields=fields,
            resource_version=query.get("resourceVersion", ""),
            path=f"{request.path}?{urlencode(sorted(query.items()))}",
            send_initial_events=send_initial,
        )
        if send_initial and bookmarks:
            watcher.queue.put_nowait(self._bookmark(rt, initial_end=True))
        response = web.StreamResponse(
            status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            self._log(request, request[_ATTRS], 200)  # a watch counts when it starts, not when it ends
            await self._pump(watcher, response, rt, timeout=timeout, bookmarks=bookmarks)
        except ConnectionResetError:
            pass  # the client went away; a disconnect while idle cancels the handler instead
        finally:
            store.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    def _bookmark(self, rt: _resources.ResourceType, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        event = {
            "type": "BOOKMARK",
            "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
        }
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"

    async def _pump(
        self,
        watcher: _store.Watcher,
        response: web.StreamResponse,
        rt: _resources.ResourceType,
        *,
        timeout: float,
        bookmarks: bool,
    ) -> None:
        """Stream queued events until the queue's end (None) or the timeout; BOOKMARKs when allowed.

        One wait per item: a timer puts a tick into the queue at the next bookmark time or the deadline
        (a per-item `asyncio.wait` with a timeout cost more than the event itself with thousands of watches).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queue = watcher.queue
        interval = self.bookmark_interval

        def arm() -> asyncio.TimerHandle:
            when = min(deadline, loop.time() + interval) if bookmarks else deadline
            return loop.call_at(when, queue.put_nowait, _TICK)

        timer = arm()
        try:
            while True:
                item = await queue.get()
                chunks: list[bytes] = []
                ticked = False
                while True:
                    if item is None:
                        if chunks:
                            await response.write(b"".join(chunks))
                        return
                    if item is _TICK:
                        ticked = True
                    else:
                        chunks.append(item)
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                if ticked:
                    if loop.time() >= deadline:
                        if chunks:
                            await response.write(b"".join(chunks))
                        return
                    if bookmarks and not chunks:
                        # Only an idle stream gets one; every event queued before it is written first
                        # (the queue is empty), so its resourceVersion never runs ahead of them.
                        chunks.append(self._bookmark(rt))
                    timer = arm()
                if chunks:
                    await response.write(b"".join(chunks))
        finally:
            timer.cancel()


def serve_until_interrupted(*, port: int = 0, kubeconfig_path: str | None = None, tls: bool = True) -> int:
    """`toolhive-operator loopback`: run the API until Ctrl-C; print its URL and admin kubeconfig path.

    HTTPS by default, so kubectl (which sends tokens only over TLS) works with the printed kubeconfig.
    """
    stop = threading.Event()
    with LoopbackApi(port=port, tls=tls) as api:
        target = (
            Path(kubeconfig_path)
            if kubeconfig_path
            else Path(tempfile.gettempdir()) / (f"toolhive-loopback-{api.url.rsplit(':', 1)[1]}.kubeconfig")
        )
        path = api.write_kubeconfig(target)
        print(f"loopback Kubernetes API serving at {api.url} (Ctrl-C to stop)")
        print(f"kubeconfig: {path}")
        print(f"  export KUBECONFIG={path}")
        try:
            stop.wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0

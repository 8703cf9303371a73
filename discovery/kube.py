"""A small asyncio Kubernetes client on plain dicts: the only module in either package that speaks HTTP.

Credentials come from the pod's service account, from a kubeconfig with static credentials
(`discovery.kubeconfig`), or else from `kubernetes.aio.config` (exec plugins, auth providers). Requests go
through one aiohttp session with a bounded pool, watches each through a bare connection of their own
(`_WatchStream`: a process may hold thousands, ~22 KiB each as aiohttp responses, a few KiB this way).
Every call is a child span (`k8s.api`) of whatever span is current, retries transient failures with
bounded jittered backoff (429 honours Retry-After), and logs a retried failure once, not on every attempt.
Callers: `discovery` (grants, status, watches) and the `toolhive` operator (apply layer, multiplexer).
Nothing here knows any resource beyond `Resource` values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson
import yarl
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from discovery import kubeconfig as kubeconfig_mod

Body = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("discovery.kube")

CONTENT_TYPES: Final[Mapping[PatchType, str]] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
TRANSIENT: Final = frozenset({429, 500, 502, 503, 504})
POOL_SIZE: Final = 64
"""Concurrent requests (not watches) per process; more wait for a free connection."""
_VERBS: Final = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}
_List = list  # `Api.list` shadows the builtin inside the class body


def dumps(value: Any) -> bytes:
    """`value` as JSON bytes, as `json.dumps` writes it up to whitespace (non-ASCII stays escaped).

    orjson is ~10x faster than the standard encoder; what it refuses (non-string keys, integers beyond
    64 bits) and any non-ASCII output, which the YAML reading of apply patches treats more loosely than
    JSON, go through `json` instead.
    """
    try:
        data = orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
    return data if data.isascii() else json.dumps(value, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """Decode JSON bytes: orjson, or `json` for what orjson refuses (NaN, UTF-16, invalid UTF-8)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def tracer_provider_installed() -> bool:
    """True once a tracer provider is OpenTelemetry's global one (it is set once, for good).

    Until then every span of a module-level tracer is a no-op that would still build its attributes and
    attach and detach a context; callers skip all of that. This reads what ProxyTracer itself reads on
    every span (a provider named by OTEL_PYTHON_TRACER_PROVIDER is loaded by the first `get_tracer`):
    `trace.get_tracer_provider()` would look the environment up on each call (~2 us).
    """
    return trace._TRACER_PROVIDER is not None


class _NoSpan:
    """The scope of a span not recorded: yields the invalid span and leaves the context alone."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


NO_SPAN: Final = _NoSpan()


@dataclasses.dataclass(frozen=True)
class Resource:
    """Identity of an API resource type: enough to build its URLs."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{_segment(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{_segment(name)}"
            if subresource:
                base += f"/{subresource}"
        return base


_UNRESERVED: Final = re.compile(r"[A-Za-z0-9._~-]+").fullmatch


def _segment(value: str) -> str:
    """`value` percent-encoded as one path segment (Kubernetes names need no encoding: checked first)."""
    return value if _UNRESERVED(value) else quote(value, safe="")


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
EVENTS = Resource("", "v1", "events", "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")


SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_RELOAD_SECONDS: Final = 60.0
"""Bound service-account tokens rotate; the file is read again after this long (as client-go does)."""


def in_cluster(
    *, environ: Mapping[str, str], directory: Path | None = None
) -> tuple[str, ssl.SSLContext, Callable[[], Awaitable[str]]]:
    """(host, TLS context, auth) from the pod's environment and its mounted service-account token."""
    directory = directory or SERVICE_ACCOUNT_DIR
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise RuntimeError(
            "not running in a pod (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): set KUBECONFIG"
        )
    token_file = directory / "token"
    if not token_file.is_file():
        raise RuntimeError(f"no service-account token at {token_file}: set KUBECONFIG")
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    authority = f"[{host}]" if ":" in host else host
    return f"https://{authority}:{port}", context, _token_file_auth(token_file)


def _token_file_auth(token_file: Path) -> Callable[[], Awaitable[str]]:
    """A bearer token read from `token_file`, and read again every TOKEN_RELOAD_SECONDS."""
    cached: list[tuple[float, str]] = []

    async def auth() -> str:
        now = time.monotonic()
        if not cached or now - cached[0][0] >= TOKEN_RELOAD_SECONDS:
            cached[:] = [(now, "Bearer " + token_file.read_text().strip())]
        return cached[0][1]

    return auth


class ApiError(Exception):
    """A non-2xx answer. `body` is the Kubernetes `Status` when the server sent one."""

    def __init__(self, status: int, body: Body | None = None, *, retry_after: float | None = None) -> None:
        self.status = status
        self.body = body or {}
        self.reason = str(self.body.get("reason", ""))
        self.retry_after = retry_after
        super().__init__(f"{status} {self.reason}: {self.body.get('message', '')}".strip())

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): the caller must list again."""


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Body


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for transient answers (429, 5xx) and dropped connections."""

    attempts: int = 6
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay * 4)
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


ResponseHook = Callable[[str, str, int], None]
"""Called as hook(verb, resource plural, status code) after every answer (metrics use it)."""


class Api:
    """Dict-based access to the Kubernetes API. Create with `connect()`; close with `close()`."""

    def __init__(
        self,
        *,
        host: str,
        ssl_context: ssl.SSLContext | None,
        auth: Callable[[], Any],
        retry: RetryPolicy = RetryPolicy(),
        on_response: ResponseHook | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        split = urlsplit(self.host)
        # OpenTelemetry's HTTP client conventions require server.address and server.port on every span.
        self._server_attributes: dict[str, str | int] = {
            "server.address": split.hostname or "",
            "server.port": split.port or (443 if split.scheme == "https" else 80),
        }
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._auth = auth
        self.retry = retry
        self.on_response = on_response
        # Watches do not use this pool, so it can be bounded: a burst (thousands of informers listing at
        # a cold start) queues for connections instead of opening, and then keeping alive, one each.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        self._warned: set[tuple[str, str, int]] = set()
        # Requests beyond the pool wait here, before aiohttp allocates a request, a response and their
        # buffers for each: a cold start's thousands of concurrent lists otherwise peak at ~10 KiB each,
        # and the heap stays that large (measured: 14 -> 7 KiB of RSS per served watch at 2000).
        self._gate = asyncio.Semaphore(POOL_SIZE)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        on_response: ResponseHook | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> Api:
        """Load credentials from `kubeconfig`, or from the pod's service account when it is None.

        In a pod (the usual case) nothing from the `kubernetes` package is imported: its package
        initialisation loads the whole generated client (~11 MiB of RSS in every process) for what is
        three environment values and two files here (client-go's in-cluster configuration). Nor for a
        kubeconfig with static credentials (`discovery.kubeconfig`); only exec plugins, auth providers
        and merged files need the official loader.
        """
        if kubeconfig is None:
            host, context_in_pod, auth_in_pod = in_cluster(environ=os.environ)
            return cls(
                host=host, ssl_context=context_in_pod, auth=auth_in_pod, retry=retry, on_response=on_response
            )
        try:
            static = kubeconfig_mod.load(kubeconfig, context=context)
        except kubeconfig_mod.NotStatic:
            pass  # exec plugins, auth providers, merged files: the official loader below
        else:
            header = static.authorization

            async def fixed() -> str | None:
                return header

            auth = fixed if static.token_file is None else _token_file_auth(static.token_file)
            return cls(
                host=static.host,
                ssl_context=static.ssl_context,
                auth=auth,
                retry=retry,
                on_response=on_response,
            )

        from kubernetes.aio import config as aio_config
        from kubernetes.aio.client import Configuration

        configuration = Configuration()
        await aio_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )

        context_ssl: ssl.SSLContext | None = None
        if configuration.host.startswith("https"):
            context_ssl = ssl.create_default_context(
                cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data
            )
            if configuration.cert_file:
                context_ssl.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
            if not configuration.verify_ssl:
                context_ssl.check_hostname = False
                context_ssl.verify_mode = ssl.CERT_NONE

        async def loaded() -> str | None:
            token: str | None = await configuration.get_api_key_with_prefix(
                "BearerToken", alias="authorization"
            )
            if token is None and configuration.username:
                return str(configuration.get_basic_auth_token())
            return token

        return cls(
            host=configuration.host,
            ssl_context=context_ssl,
            auth=loaded,
            retry=retry,
            on_response=on_response,
        )

    async def close(self) -> None:
        await self._session.close()
        if self.host.startswith("https"):
            # aiohttp shuts TLS connections down asynchronously (close_notify); give that its documented
            # pause before the caller's loop may end, or the sockets leak.
            await asyncio.sleep(0.25)

    # -- verbs --------------------------------------------------------------------------------------

    async def get(
        self, res: Resource, name: str, *, namespace: str | None = None, subresource: str = ""
    ) -> Body:
        """The object; raises ApiError(404) when it does not exist."""
        return await self._json("GET", res, res.path(namespace=namespace, name=name, subresource=subresource))

    async def get_or_none(self, res: Resource, name: str, *, namespace: str | None = None) -> Body | None:
        """The object, or None when it does not exist (a normal answer: its span is not an error)."""
        return await self._send("GET", res, res.path(namespace=namespace, name=name), missing_ok=True)

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[_List[Body], str]:
        """All matching objects (following `continue` pages) and the list's resourceVersion."""
        items: _List[Body] = []
        token: str | None = None
        while True:
            query = _query(
                labelSelector=label_selector,
                fieldSelector=field_selector,
                limit=page_size,
                **{"continue": token},
            )
            page = await self._json("GET", res, res.path(namespace=namespace) + query, verb="list")
            kind = res.kind
            for item in page.get("items") or []:
                # List items omit apiVersion/kind; restore them so bodies look like single GETs.
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    async def create(self, res: Resource, body: Body, *, namespace: str | None = None) -> Body:
        return await self._json("POST", res, res.path(namespace=namespace), body=body, verb="create")

    async def replace(self, res: Resource, body: Body, *, subresource: str = "") -> Body:
        meta = body["metadata"]
        path = res.path(namespace=meta.get("namespace"), name=meta["name"], subresource=subresource)
        return await self._json("PUT", res, path, body=body, verb="update")

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Body | _List[Body],
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str = "",
        field_manager: str | None = None,
        force: bool = False,
    ) -> Body:
        """Patch and return the new object. `apply` is server-side apply (needs a field manager)."""
        query = _patch_query(field_manager, force)
        path = res.path(namespace=namespace, name=name, subresource=subresource) + query
        return await self._json(
            "PATCH", res, path, body=patch, content_type=CONTENT_TYPES[patch_type], verb="patch"
        )

    async def apply(self, res: Resource, body: Body, *, field_manager: str, subresource: str = "") -> Body:
        """Server-side apply of `body` (create if missing), forcing ownership of the fields it names."""
        meta = body["metadata"]
        return await self.patch(
            res,
            meta["name"],
            body,
            namespace=meta.get("namespace"),
            patch_type="apply",
            subresource=subresource,
            field_manager=field_manager,
            force=True,
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: Literal["Background", "Foreground", "Orphan"] | None = None,
        uid: str | None = None,
    ) -> Body | None:
        """Delete; returns the answer body, or None when the object was already gone (404)."""
        body: Body = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self._send(
            "DELETE", res, res.path(namespace=namespace, name=name), body=body, missing_ok=True
        )

    async def watch(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """One watch request: yields events until the server ends the stream.

        Raises WatchExpired on 410 (in the stream or as the answer) and ApiError on other failures.
        The caller owns reconnecting; `Informer` does it.
        """
        query = _query(
            watch="1",
            allowWatchBookmarks="true",
            labelSelector=label_selector,
            fieldSelector=field_selector,
            resourceVersion=resource_version,
            timeoutSeconds=timeout_seconds,
        )
        headers = await self._headers(None)
        stream = await _WatchStream.open(
            self.host, res.path(namespace=namespace) + query, headers=headers, ssl_context=self._ssl
        )
        del headers, query  # the token is ~1 KiB, and this frame lives as long as the watch
        try:
            if stream.status == 410:
                raise WatchExpired(res.plural)
            if stream.status >= 400:
                raise stream.error()
            # Thousands of watches wait here; between events nothing is referenced from this frame but
            # raw lines not yet consumed (never the last decoded object, which belongs to the consumer).
            while (line := await stream.next_line()) is not None:
                yield _watch_event(line, res)
        finally:
            stream.close()

    async def ping(self) -> bool:
        """True when the API server answers `/version` (readiness: a live, authenticated connection)."""
        try:
            headers = await self._headers(None)
            timeout = aiohttp.ClientTimeout(total=5)
            async with self._session.get(self.host + "/version", headers=headers, timeout=timeout) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    # -- plumbing -----------------------------------------------------------------------------------

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        auth = await self._auth()
        if auth:
            headers["Authorization"] = auth
        return headers

    async def _json(
        self,
        method: str,
        res: Resource,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        verb: str | None = None,
    ) -> Body:
        answer = await self._send(method, res, path, body=body, content_type=content_type, verb=verb)
        assert answer is not None  # only missing_ok answers None
        return answer

    async def _send(
        self,
        method: str,
        res: Resource,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        verb: str | None = None,
        missing_ok: bool = False,
    ) -> Body | None:
        """One request with retries inside a `k8s.api` span. `missing_ok`: a 404 answers None, and the
        span stays unmarked (the caller asked "is it there?"; "no" is not an error)."""
        verb = verb or _VERBS.get(method, method)
        url = self.host + path
        data = dumps(body) if body is not None else None
        scope: AbstractContextManager[trace.Span] = NO_SPAN
        if tracer_provider_installed():
            scope = _tracer.start_as_current_span(
                f"k8s.api {verb} {res.plural}",
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "http.request.method": method,
                    "url.full": url,
                    "url.path": path.split("?", 1)[0],
                    **self._server_attributes,
                    "k8s.resource": res.plural,
                    "k8s.api.verb": verb,
                },
            )
        with scope as span:
            attempt = 0
            while True:
                error_type = ""
                try:
                    async with self._gate:  # waits before aiohttp builds anything (a burst stays cheap)
                        headers = await self._headers(content_type if data is not None else None)
                        # `path` is percent-encoded already (quote, urlencode): yarl need not re-encode it.
                        async with self._session.request(
                            method, yarl.URL(url, encoded=True), data=data, headers=headers
                        ) as resp:
                            span.set_attribute("http.response.status_code", resp.status)
                            if self.on_response:
                                self.on_response(verb, res.plural, resp.status)
                            if resp.status < 400:
                                return _object(await resp.read())
                            if resp.status == 404 and missing_ok:
                                return None
                            error = await _error(resp)
                            error_type = str(resp.status)
                except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                    error = ApiError(503, {"reason": "ConnectionError", "message": repr(exc)})
                    error_type = type(exc).__qualname__  # no response: the conventions want the exception
                if error.status not in TRANSIENT or attempt + 1 >= self.retry.attempts:
                    span.set_status(Status(StatusCode.ERROR, error.reason or str(error.status)))
                    span.set_attribute("error.type", error_type)
                    raise error  # leaving the span records it as an `exception` event
                self._log_retry(verb, res.plural, error)
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after))
                attempt += 1
                span.set_attribute("http.request.resend_count", attempt)

    def _log_retry(self, verb: str, plural: str, error: ApiError) -> None:
        key = (verb, plural, error.status)
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)  # bounded: verbs x resources x status codes
        log.log(level, "retrying %s %s after %s", verb, plural, error, extra={"status": error.status})


_receiving = threading.local()


def _receive_buffer() -> memoryview:
    """This thread's receive buffer, shared by every watch on its event loop. Per thread, not per
    process: a loop in another thread may be inside `recv_into` at the same moment (the demo and the
    tests host discovery and the operator on two loops), and would write over bytes not copied yet."""
    try:
        buffer: memoryview = _receiving.buffer
    except AttributeError:
        buffer = _receiving.buffer = memoryview(bytearray(64 * 1024))
    return buffer


_KEEPALIVE: Final = tuple(
    (getattr(socket, name), value)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
)


class _WatchStream(asyncio.BufferedProtocol):
    """One watch request on its own connection, read as newline-separated JSON (HTTP/1.1, chunked).

    Watches are long-lived and numerous (4 per served namespace), so each is a bare asyncio protocol:
    a transport, this object and the bytes not consumed yet, instead of a pooled client connection with
    its response object, parsed headers, stream readers and timers (~22 KiB each, measured). Requests
    with ordinary answers still go through the aiohttp session. Reading pauses while more than
    `HIGH_WATER` bytes wait for a slow consumer.
    """

    HIGH_WATER: Final = 1 << 20
    _WATCH_HEADERS: Final = frozenset({"transfer-encoding", "content-length", "retry-after"})

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buffer = bytearray()  # raw bytes not parsed yet
        self._lines: _List[bytes] = []  # complete body lines, not consumed yet (a deque costs 600 B more)
        self._partial = b""  # body bytes after the last newline
        self._chunk = -1  # bytes left in the current chunk (+2 for its CRLF); -1: a size line is next
        self._chunked = False
        self._length: int | None = None  # Content-Length of a non-chunked answer
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._paused = False

    @classmethod
    async def open(
        cls, host: str, target: str, *, headers: Mapping[str, str], ssl_context: ssl.SSLContext | bool
    ) -> _WatchStream:
        split = urlsplit(host)
        secure = split.scheme == "https"
        port = split.port or (443 if secure else 80)
        hostname = split.hostname or ""
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if secure:
            tls = ssl_context if isinstance(ssl_context, ssl.SSLContext) else ssl.create_default_context()
        try:
            # `asyncio.timeout`, not `wait_for`: before Python 3.12, `wait_for` returns the connection
            # when it is made in the same turn the task is cancelled, swallowing the cancellation, so
            # a stopping informer went on watching forever (seen as a process that never stopped).
            async with asyncio.timeout(10):
                transport, stream = await loop.create_connection(
                    cls, hostname, port, ssl=tls, server_hostname=hostname if tls else None
                )
        except OSError as error:
            raise ApiError(503, {"reason": "ConnectionError", "message": repr(error)}) from error
        authority = split.netloc.rsplit("@", 1)[-1]
        lines = [f"GET {split.path.rstrip('/')}{target} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            await stream._wait(line=False)
        except BaseException:
            stream.close()
            raise
        return stream

    # -- the consumer side ----------------------------------------------------------------------------

    async def next_line(self) -> bytes | None:
        """The next non-empty line of the body; None at its end."""
        while True:
            while self._lines:
                line = self._lines.pop(0)
                if self._paused and len(self._lines) < 64:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
                if line.strip():
                    return line
            if self._eof:
                return None
            await self._wait(line=True)

    def error(self) -> ApiError:
        """The ApiError of a non-2xx answer (its body read to the end first, by `next_line`)."""
        return _api_error(
            self.status, b"\n".join(self._lines) + self._partial, retry_after=self.headers.get("retry-after")
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def _wait(self, *, line: bool) -> None:
        """Until the answer's status is known (for an error answer: its whole body), and with `line`
        until a line or the end of the body is there. Raises what broke the connection."""
        while not self._eof and (self.status == 0 or self.status >= 400 or (line and not self._lines)):
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        if self.status == 0:
            raise ApiError(503, {"reason": "ConnectionError", "message": "connection closed"})

    # -- the protocol side ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # A watch may be silent for minutes; TCP keepalive (30 s, as client-go's dialer) notices a peer
        # that vanished without closing, and the informer then resumes elsewhere.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in _KEEPALIVE:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One receive buffer for every watch of this loop: the loop fills it and calls `buffer_updated`
        # at once, so reads neither allocate (a plain Protocol gets a fresh 256 KiB bytes per read) nor
        # fragment.
        return _receive_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_receive_buffer()[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self._buffer += data
        try:
            self._parse()
        except ValueError as error:
            self._fail(ApiError(502, {"reason": "BadResponse", "message": str(error)}))
            return
        if len(self._lines) > 64 and sum(map(len, self._lines)) > self.HIGH_WATER and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self._eof:
            self._fail(ApiError(503, {"reason": "ConnectionError", "message": repr(exc)}))
        self._finish()
        self._transport = None

    def _parse(self) -> None:
        buffer = self._buffer
        if self.status == 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > 65536:
                    raise ValueError("response headers too long")
                return
            head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            parts = head[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ValueError(f"not an HTTP/1.x answer: {head[0][:80]!r}")
            for field in head[1:]:
                name, _, value = field.partition(":")
                name = name.strip().lower()
                if name in self._WATCH_HEADERS:
                    self.headers[name] = value.strip()
            self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            if not self._chunked and "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
            self.status = int(parts[1])
        if not self._chunked:
            data = bytes(buffer)
            buffer.clear()
            if self._length is not None:
                data = data[: self._length]
                self._length -= len(data)
                if self._length == 0:
                    self._body(data)
                    self._finish()
                    return
            self._body(data)
            return
        while buffer and not self._eof:
            if self._chunk < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
                del buffer[: end + 2]
                if size == 0:
                    self._finish()  # trailers, if any, are not needed
                    return
                self._chunk = size + 2
            take = min(self._chunk - 2, len(buffer)) if self._chunk > 2 else 0
            if take:
                self._body(bytes(buffer[:take]))
                del buffer[:take]
                self._chunk -= take
            if self._chunk <= 2:
                if len(buffer) < self._chunk:
                    return
                del buffer[: self._chunk]  # the CRLF after the chunk's data
                self._chunk = -1

    def _body(self, data: bytes) -> None:
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        self._lines.extend(lines)

    def _finish(self) -> None:
        if not self._eof:
            self._eof = True
            if self._partial.strip() and self.status < 400:
                self._lines.append(self._partial)
                self._partial = b""
        self._wake()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._eof = True
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _watch_event(line: bytes, res: Resource) -> WatchEvent:
    """One line of a watch stream; ValueError when it is not a watch event (the informer resumes)."""
    event = loads(line)
    kind = event.get("type") if isinstance(event, dict) else None
    obj = event.get("object") if isinstance(event, dict) else None
    if kind == "ERROR" and isinstance(obj, dict):
        code = obj.get("code")
        if code == 410:
            raise WatchExpired(res.plural)
        raise ApiError(code if isinstance(code, int) and code >= 400 else 500, obj)
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK") or not isinstance(obj, dict):
        raise ValueError(f"not a watch event: {line[:80]!r}")
    return WatchEvent(kind, obj)


def _object(data: bytes) -> Body:
    """The JSON object of a 2xx answer (an empty body reads as {})."""
    if not data.strip():
        return {}
    answer = loads(data)
    if not isinstance(answer, dict):
        raise ApiError(502, {"reason": "BadResponse", "message": f"not a JSON object: {data[:80]!r}"})
    return answer


@functools.lru_cache(maxsize=64)
def _patch_query(field_manager: str | None, force: bool) -> str:
    """A patch's query: the same few per process, encoded once (urlencode is ~3 us a call)."""
    return _query(fieldManager=field_manager, force="true" if force else None)


def _query(**params: Any) -> str:
    present = {key: value for key, value in params.items() if value is not None and value != ""}
    return "?" + urlencode(present) if present else ""


async def _error(resp: aiohttp.ClientResponse) -> ApiError:
    return _api_error(resp.status, await resp.read(), retry_after=resp.headers.get("Retry-After"))


def _api_error(status: int, text: bytes, *, retry_after: str | None) -> ApiError:
    """The ApiError of a non-2xx answer: its Status body (or its text), and Retry-After in seconds."""
    try:
        body = json.loads(text) if text.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {"message": text[:500].decode(errors="replace")}
    if not isinstance(body, dict):
        body = {"message": str(body)[:500]}
    seconds: float | None = None
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = None
    return ApiError(status, body, retry_after=seconds)

"""Fault injection and the request log of the loopback API.

Called from test threads (configuring faults, reading counters) and from the server thread
(matching requests, recording them); a lock guards both. It never changes stored objects.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
from collections.abc import Callable, Iterator

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclasses.dataclass
class Fault:
    status: int
    verb: str | None
    path: re.Pattern[str] | None
    remaining: int | None  # None: until cleared
    retry_after: float | None
    message: str
    user: str | None

    def matches(self, verb: str, path: str, user: str) -> bool:
        return (
            (self.verb is None or self.verb == verb)
            and (self.path is None or self.path.search(path) is not None)
            and (self.user is None or self.user == user)
        )


@dataclasses.dataclass
class Latency:
    seconds: float
    verb: str | None
    path: re.Pattern[str] | None
    remaining: int | None

    def matches(self, verb: str, path: str) -> bool:
        return (self.verb is None or self.verb == verb) and (
            self.path is None or self.path.search(path) is not None
        )


_REASONS = {
    409: ("Conflict", "Operation cannot be fulfilled: injected conflict"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
}


class Faults:
    """`api.faults`: make the next matching requests fail, slow down, or drop open watch streams."""

    def __init__(self, drop: Callable[[re.Pattern[str] | None], int]) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._latencies: list[Latency] = []
        self._drop = drop

    def add(
        self,
        *,
        status: int,
        verb: str | None = None,
        path: str | None = None,
        count: int | None = 1,
        retry_after: float | None = None,
        message: str | None = None,
        user: str | None = None,
    ) -> None:
        """The next `count` requests (None: all, until `clear()`) matching verb/path/user get `status`.

        `verb` is the Kubernetes verb (get, list, watch, create, update, patch, delete,
        deletecollection); `path` a regex searched in the URL path; 429 and 503 carry `Retry-After`.
        """
        if status not in _REASONS and not 400 <= status < 600:
            raise ValueError(f"status {status} is not an HTTP error status")
        with self._lock:
            self._faults.append(
                Fault(
                    status=status,
                    verb=verb,
                    path=re.compile(path) if path else None,
                    remaining=count,
                    retry_after=retry_after
                    if retry_after is not None
                    else (1 if status in (429, 503) else None),
                    message=message or _REASONS.get(status, ("InternalError", "injected fault"))[1],
                    user=user,
                )
            )

    def latency(
        self, seconds: float, *, verb: str | None = None, path: str | None = None, count: int | None = None
    ) -> None:
        """Delay matching requests by `seconds` (the next `count`, or all until `clear()`)."""
        with self._lock:
            self._latencies.append(Latency(seconds, verb, re.compile(path) if path else None, count))

    def drop_watches(self, *, path: str | None = None) -> int:
        """Close the open watch streams whose URL path matches; returns how many were closed."""
        return self._drop(re.compile(path) if path else None)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latencies.clear()

    def take(self, verb: str, path: str, user: str) -> tuple[Fault | None, float]:
        """Server side: the fault to answer with (consuming one count) and the delay to add."""
        with self._lock:
            delay = 0.0
            for lat in list(self._latencies):
                if lat.matches(verb, path):
                    delay += lat.seconds
                    if lat.remaining is not None:
                        lat.remaining -= 1
                        if lat.remaining <= 0:
                            self._latencies.remove(lat)
            for fault in self._faults:
                if fault.matches(verb, path, user):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault, delay
            return None, delay

    @staticmethod
    def reason(status: int) -> str:
        return _REASONS.get(status, ("InternalError", ""))[0]


@dataclasses.dataclass(frozen=True)
class Request:
    """One logged API request (also the ones that failed)."""

    verb: str
    path: str
    user: str
    status: int
    resource: str = ""  # "deployments", "mcpservers/status", "" for non-resource URLs
    namespace: str = ""
    name: str = ""
    query: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


class RequestLog:
    """`api.requests`: every request the server answered, with per-verb counters."""

    def __init__(self, *, maxlen: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[Request] = collections.deque(maxlen=maxlen)
        self._verbs: collections.Counter[str] = collections.Counter()

    def record(self, request: Request) -> None:
        with self._lock:
            self._entries.append(request)
            self._verbs[request.verb] += 1

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._verbs.clear()

    def __iter__(self) -> Iterator[Request]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def by_verb(self) -> dict[str, int]:
        """Requests per verb since the last reset."""
        with self._lock:
            return dict(self._verbs)

    def count(
        self,
        verb: str | None = None,
        *,
        user: str | None = None,
        path: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        writes: bool = False,
    ) -> int:
        """Count logged requests by verb, user, path regex, resource and namespace."""
        pattern = re.compile(path) if path else None
        return sum(
            1
            for r in self
            if (verb is None or r.verb == verb)
            and (not writes or r.is_write)
            and (user is None or r.user == user)
            and (pattern is None or pattern.search(r.path) is not None)
            and (resource is None or r.resource == resource)
            and (namespace is None or r.namespace == namespace)
        )

    def writes(
        self,
        *,
        user: str | None = None,
        path: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Count create/update/patch/delete/deletecollection requests."""
        return self.count(user=user, path=path, resource=resource, namespace=namespace, writes=True)

    def writes_by(self, key: str = "user") -> dict[str, int]:
        """Write counts grouped by `user` or `path`."""
        out: collections.Counter[str] = collections.Counter()
        for r in self:
            if r.is_write:
                out[r.user if key == "user" else r.path] += 1
        return dict(out)

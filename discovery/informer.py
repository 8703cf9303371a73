"""Keep a local cache of one resource type in one namespace (or cluster-wide) current.

List, then watch from the list's resourceVersion; resume from the last seen resourceVersion (BOOKMARKs
advance it) when the server ends a stream or the connection drops; list again on 410 Gone and emit the
difference, so no deletion is missed. Failures back off (bounded, jittered) and are logged once until the
informer recovers. The handler is called synchronously after the cache changed and must only enqueue.
Callers: discovery's controller and the operator's multiplexer. The cache holds exactly what the watch
selects (one resource type, one namespace or label selector), never anything keyed by user input.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from typing import Literal

from discovery import kube

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Handler = Callable[[EventType, kube.Body], None]
Key = tuple[str, str]

log = logging.getLogger(__name__)


def key_of(obj: kube.Body) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """One list+watch loop feeding a cache. Run `run()` in a task; `synced` fires after the first list."""

    def __init__(
        self,
        api: kube.Api,
        res: kube.Resource,
        *,
        handler: Handler,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Callable[[kube.Body], kube.Body] | None = None,
        watch_timeout: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        self.api = api
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform or strip_managed_fields
        self.handler = handler
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self._cache: dict[Key, kube.Body] = {}
        self._version = ""

    def __repr__(self) -> str:
        selector = f" {self.label_selector}" if self.label_selector else ""
        return f"Informer({self.res.plural} in {self.namespace or '*'}{selector})"

    # -- cache reads ----------------------------------------------------------------------------------

    def get(self, name: str, *, namespace: str | None = None) -> kube.Body | None:
        return self._cache.get((namespace or self.namespace or "", name))

    def items(self) -> Iterator[kube.Body]:
        return iter(list(self._cache.values()))

    def __len__(self) -> int:
        return len(self._cache)

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if not self._version:
                    await self._relist()
                await self._watch_once()
                if failures:
                    log.info("%r recovered", self)
                failures = 0
            except kube.WatchExpired:
                self._version = ""  # too old: list again and emit what changed meanwhile
            except (TimeoutError, kube.ApiError, OSError, ValueError) as error:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "%r failed, retrying with backoff: %s", self, error)
                ceiling = min(self.max_backoff, 0.05 * 2**failures)
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))

    async def _relist(self) -> None:
        items, version = await self.api.list(
            self.res,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        fresh = {key_of(item): self.transform(item) for item in items}
        gone = [key for key in self._cache if key not in fresh]
        for key in gone:
            self.handler("DELETED", self._cache.pop(key))
        for key, item in fresh.items():
            previous = self._cache.get(key)
            self._cache[key] = item
            if previous is None:
                self.handler("ADDED", item)
            elif _version_of(previous) != _version_of(item):
                self.handler("MODIFIED", item)
        self._version = version
        self.synced.set()

    async def _watch_once(self) -> None:
        async for event in self.api.watch(
            self.res,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self._version,
            timeout_seconds=self.watch_timeout,
        ):
            version = _version_of(event.object)
            if version:
                self._version = version
            if event.type == "BOOKMARK":
                continue
            obj = self.transform(event.object)
            obj.setdefault("apiVersion", self.res.api_version)
            obj.setdefault("kind", self.res.kind)
            key = key_of(obj)
            if event.type == "DELETED":
                self._cache.pop(key, None)
                self.handler("DELETED", obj)
            else:
                self._cache[key] = obj
                self.handler(event.type, obj)


def strip_managed_fields(obj: kube.Body) -> kube.Body:
    """Default transform: managedFields are large and nobody here reads them."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _version_of(obj: kube.Body) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")

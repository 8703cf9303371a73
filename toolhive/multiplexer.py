"""Serve MCPServers in a changing set of namespaces from one process.

For each served namespace (or once cluster-wide, namespace None) the multiplexer runs one informer per
watched kind: MCPServers, plus the Deployments, Services and StatefulSets labelled `toolhive=true` (the
kinds ToolHive's controller owns and watches). Every event becomes a key `(namespace, name)` of the
MCPServer it concerns, queued on one shared WorkQueue, so reconciles of one object never overlap while
different objects run in parallel. Kinds it does not watch (ServiceAccounts, Roles, RoleBindings,
ConfigMaps) are checked on each pass against the apply cache and re-read by the periodic resync.
The echoes of a pass's own writes queue no second pass: an MCPServer whose status alone moved or whose
finalizer appeared (`needs_pass`), a child whose kept fields did not change (`child_changed`), a
Deployment or Service created while its owner's pass, which applies it, is running.

    serve(ns):   start informers in ns -> their initial listing queues every MCPServer there
    release(ns): stop queueing ns -> wait for its running passes -> `on_release(ns)` (finalizers)
                 -> stop its informers -> forget what was cached about it

Called by scope.py (which namespaces) and operator.py (wiring). Writes nothing itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from discovery import informer, kube
from toolhive import constants, resources
from toolhive.workqueue import Result, Trigger, WorkQueue

Key = tuple[str, str]
"""(namespace, name) of an MCPServer."""

WATCHED_OWNED: Final = (resources.DEPLOYMENTS, resources.SERVICES, resources.STATEFULSETS)
APPLIED_OWNED: Final = (resources.DEPLOYMENTS, resources.SERVICES)
"""Watched children a pass applies itself (the runner creates the StatefulSet; a pass adopts it)."""
OWNED_SELECTOR: Final = f"{constants.LABEL_TOOLHIVE}=true"

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Served:
    informers: dict[str, informer.Informer]
    tasks: list[asyncio.Task[None]]
    link: object = None


class Multiplexer:
    def __init__(
        self,
        api: kube.Api,
        *,
        process: Callable[[Key, tuple[Trigger, ...]], Awaitable[Result]],
        on_release: Callable[[str], Awaitable[None]],
        workers: int,
    ) -> None:
        self.api = api
        self.queue: WorkQueue[Key] = WorkQueue(process, workers=workers)
        self._on_release = on_release
        self._served: dict[str | None, _Served] = {}
        self._leaving: set[str] = set()

    # -- which namespaces ---------------------------------------------------------------------------

    @property
    def namespaces(self) -> frozenset[str | None]:
        return frozenset(self._served)

    async def serve(self, namespace: str | None, *, link: object = None) -> None:
        """Start watching `namespace` (None: cluster-wide). `link` is attached to the passes it queues."""
        if namespace in self._served:
            return
        self._leaving.discard(namespace or "")
        served = _Served(informers={}, tasks=[], link=link)
        kinds = [(resources.MCPSERVERS, None), *((res, OWNED_SELECTOR) for res in WATCHED_OWNED)]
        for res, selector in kinds:
            watcher = informer.Informer(
                self.api,
                res,
                namespace=namespace,
                label_selector=selector,
                handler=self._handler(res, served),
                transform=slim_mcpserver if res is resources.MCPSERVERS else slim_owned,
                compact=True,
                significant=needs_pass if res is resources.MCPSERVERS else child_changed,
            )
            served.informers[res.plural] = watcher
            served.tasks.append(
                asyncio.create_task(watcher.run(), name=f"watch {res.plural} {namespace or '*'}")
            )
        self._served[namespace] = served
        log.info("serving namespace", extra={"k8s.namespace.name": namespace or "*"})

    async def release(self, namespace: str) -> None:
        """Stop serving `namespace` after its passes finished and `on_release` let go of its objects."""
        self._leaving.add(namespace)
        keys = self._known_keys(namespace)
        self.queue.forget(keys)
        await self.queue.wait_inactive(keys)
        try:
            await self._on_release(namespace)
        except BaseException:
            self._leaving.discard(namespace)  # still served: the next attempt starts over
            raise
        served = self._served.pop(namespace, None)
        if served is not None:
            for task in served.tasks:
                task.cancel()
            await asyncio.gather(*served.tasks, return_exceptions=True)
        self._leaving.discard(namespace)
        log.info("released namespace", extra={"k8s.namespace.name": namespace})

    async def stop(self) -> None:
        tasks = [task for served in self._served.values() for task in served.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._served.clear()

    # -- cache reads for reconcile ------------------------------------------------------------------

    def lookup(self, res: kube.Resource, *, namespace: str, name: str) -> kube.Body | None:
        served = self._served.get(namespace) or self._served.get(None)
        if served is None:
            return None
        watcher = served.informers.get(res.plural)
        return watcher.get(name, namespace=namespace) if watcher is not None else None

    def mcpservers(self, namespace: str | None) -> list[kube.Body]:
        served = self._served.get(namespace)
        if served is None:
            return []
        return list(served.informers[resources.MCPSERVERS.plural].items())

    # -- events -------------------------------------------------------------------------------------

    def _handler(self, res: kube.Resource, served: _Served) -> informer.Handler:
        kind = res.kind.lower()
        # One shared Trigger per event type: a queued key keeps up to 16, and thousands may be queued.
        triggers = {event: Trigger(f"{kind}.{event.lower()}") for event in ("ADDED", "MODIFIED", "DELETED")}

        def handle(event: informer.EventType, obj: kube.Body) -> None:
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            if namespace in self._leaving:
                return
            name = meta.get("name") if res is resources.MCPSERVERS else _owner_name(obj)
            if not name:
                return
            if event == "ADDED" and res in APPLIED_OWNED and self.queue.is_active((namespace, name)):
                return  # the running pass is applying this child now: its echo needs no second pass
            trigger = triggers[event]
            if event == "ADDED" and served.link is not None:
                trigger = Trigger(trigger.reason, served.link)
            self.queue.add((namespace, str(name)), trigger)

        return handle

    def _known_keys(self, namespace: str) -> list[Key]:
        served = self._served.get(namespace)
        if served is None:
            return []
        return served.informers[resources.MCPSERVERS.plural].keys()


_LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
_SLIM_METADATA: Final = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "labels",
    "ownerReferences",
    "deletionTimestamp",
)


def slim_mcpserver(obj: kube.Body) -> kube.Body:
    """An MCPServer as the reconciler reads it: everything but managedFields and kubectl's copy of the
    last applied configuration (both can be larger than the rest; nothing here reads them)."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and annotations.pop(_LAST_APPLIED, None) is not None and not annotations:
        del meta["annotations"]
    return obj


def slim_owned(obj: kube.Body) -> kube.Body:
    """What the operator reads from a watched child: identity, labels, ownership, replicas and status
    counters (the apply layer confirms a child whose status alone moved from its generation, labels and
    ownerReferences, so those stay).

    A full Deployment costs ~18 KiB as Python objects; this keeps a few hundred bytes of JSON (the cache
    is compact). The apply layer confirms its own writes by resourceVersion and reads the full object
    only when it must compare contents; readiness needs `status.readyReplicas`, so status keeps its
    scalar fields (counters, observedGeneration) and drops conditions.
    """
    meta = obj.get("metadata") or {}
    slim: kube.Body = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {key: meta[key] for key in _SLIM_METADATA if key in meta},
    }
    spec = obj.get("spec") or {}
    if "replicas" in spec:
        slim["spec"] = {"replicas": spec["replicas"]}
    status = obj.get("status")
    if isinstance(status, dict):
        slim["status"] = {key: value for key, value in status.items() if isinstance(value, int | str)}
    return slim


def needs_pass(old: kube.Body, new: kube.Body) -> bool:
    """Whether a modified MCPServer needs a pass: not for the echoes of the operator's own writes, a
    status that alone moved or its finalizer appearing (controller-runtime's generation predicate, plus
    the metadata a pass reads). Anything else, someone removing the finalizer included, does."""
    if _differs(old, new, parts=("spec",), metadata=_PASS_METADATA):
        return True
    before = (old.get("metadata") or {}).get("finalizers") or []
    after = (new.get("metadata") or {}).get("finalizers") or []
    return before != after and [f for f in after if f != constants.FINALIZER] != before


def child_changed(old: kube.Body, new: kube.Body) -> bool:
    """A watched child changed in what the operator keeps of it (its slim copy), not only elsewhere."""
    return _differs(old, new, parts=("spec", "status"), metadata=_CHILD_METADATA)


_PASS_METADATA: Final = ("generation", "deletionTimestamp", "labels", "annotations", "ownerReferences", "uid")
_CHILD_METADATA: Final = tuple(key for key in _SLIM_METADATA if key != "resourceVersion")


def _differs(old: kube.Body, new: kube.Body, *, parts: tuple[str, ...], metadata: tuple[str, ...]) -> bool:
    """Whether any of the top-level `parts` or the `metadata` keys differ between two copies."""
    if any(old.get(part) != new.get(part) for part in parts):
        return True
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return any(old_meta.get(key) != new_meta.get(key) for key in metadata)


def _owner_name(obj: kube.Body) -> str | None:
    """The MCPServer an owned object belongs to: its controller reference, else ToolHive's label."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == constants.MCPSERVER_KIND:
            return str(ref.get("name"))
    labels = meta.get("labels") or {}
    value = labels.get(constants.LABEL_TOOLHIVE_NAME)
    return str(value) if value else None

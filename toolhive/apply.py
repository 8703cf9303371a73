"""The operator's only writer: server-side apply of desired objects, status, finalizers, events, deletes.

A write happens only when something differs. For each owned object the applier remembers, in a bounded
LRU cache, the digest of the manifest it last applied and the resourceVersion the server answered; an
observed object still at that resourceVersion with an unchanged manifest needs nothing. On a cache miss
(first pass after a start, or an evicted entry) the observed object is compared with the manifest as a
subset (server defaults are fine; a changed or missing field of ours is drift), so a restart makes no
writes when the cluster is already right. Called by reconcile.py and the multiplexer; never by builders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import secrets
import sys
import zlib
from collections import Counter
from collections.abc import Hashable, Iterator
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import orjson

from discovery import constants as discovery_constants
from discovery import kube
from toolhive import constants, resources

Body = dict[str, Any]
ObjectKey = tuple[str, str, str, str]

UNKNOWN: Final = object()
"""Passed as `observed` when the caller has no cached copy (unwatched kinds): read it only if needed."""


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    digest: bytes
    """16-byte BLAKE2b of the manifest (one record per owned object: 70 000 at 10 000 MCPServers)."""
    resource_version: str
    generation: int | None = None
    """metadata.generation the server answered (None for kinds without one, such as Services)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    changed: bool
    object: Body | None


class Applier:
    def __init__(
        self, api: kube.Api, *, field_manager: str = constants.FIELD_MANAGER, cache_size: int = 200_000
    ):
        self.api = api
        self.field_manager = field_manager
        self._applied: Lru[ObjectKey, Applied] = Lru(cache_size)
        # (namespace, name) -> (resourceVersion the write was based on, the status written as compressed
        # JSON); dropped once a newer copy of the server is seen, so it holds only writes in flight.
        self._statuses: Lru[tuple[str, str], tuple[str, bytes]] = Lru(cache_size // 8)
        self.writes: Counter[str] = Counter()

    # -- desired objects ------------------------------------------------------------------------------

    async def ensure(
        self, manifest: Body, *, observed: Body | object | None = UNKNOWN, partial: bool = False
    ) -> Outcome:
        """Make the object match `manifest`. `observed`: the cached object, None if known absent, or UNKNOWN.

        With UNKNOWN and a matching remembered digest nothing is read or written (the resync passes the
        observed object to catch drift in kinds the operator does not watch). `partial`: `observed` is a
        slim cached copy (identity and resourceVersion only), enough to confirm what was applied; anything
        else is judged on a full read.
        """
        res = resources.for_manifest(manifest)
        meta = manifest["metadata"]
        key = _key(manifest)
        digest = _digest(manifest)
        record = self._applied.get(key)
        if record is not None and record.digest != digest:
            # We applied an older manifest (the spec changed since): reading first cannot spare the write.
            observed = None
        if observed is UNKNOWN:
            if record is not None and record.digest == digest:
                return Outcome(False, None)
            observed = await self.api.get_or_none(res, meta["name"], namespace=meta.get("namespace"))
        if isinstance(observed, dict):
            version = _resource_version(observed)
            if record is not None and record.digest == digest:
                if record.resource_version == version:
                    return Outcome(False, observed)
                if partial and _only_status_moved(manifest, observed, record):
                    self._applied[key] = dataclasses.replace(record, resource_version=version)
                    return Outcome(False, observed)
            if partial:
                observed = await self.api.get_or_none(res, meta["name"], namespace=meta.get("namespace"))
        if isinstance(observed, dict) and is_subset(manifest, observed):
            self._applied[key] = _applied(digest, observed)
            return Outcome(False, observed)
        result = await self.api.apply(res, manifest, field_manager=self.field_manager)
        self.writes["apply"] += 1
        self._applied[key] = _applied(digest, result)
        return Outcome(True, result)

    def remembers(self, manifest: Body) -> bool:
        """True when this applier wrote or confirmed the object since it started (or last forgot it)."""
        return _key(manifest) in self._applied

    def forget(self, namespace: str) -> None:
        """Drop what is remembered about a namespace the operator left."""
        for key in [key for key in self._applied if key[2] == namespace]:
            self._applied.pop(key, None)
        for server in [server for server in self._statuses if server[0] == namespace]:
            self._statuses.pop(server, None)

    async def delete(self, res: kube.Resource, name: str, *, namespace: str) -> bool:
        """Delete if present; True when a delete was sent and the object existed."""
        answer = await self.api.delete(res, name, namespace=namespace, propagation="Background")
        self.writes["delete"] += 1
        return answer is not None

    async def adopt(self, obj: Body, *, owner_reference: Body) -> Body:
        """Add a controller ownerReference to an object someone else created (the runner's StatefulSet)."""
        res = resources.for_manifest(obj)
        meta = obj["metadata"]
        references = [ref for ref in meta.get("ownerReferences") or [] if not ref.get("controller")]
        patch = {"metadata": {"ownerReferences": [*references, owner_reference]}}
        patch["metadata"]["resourceVersion"] = meta["resourceVersion"]  # conflict, not clobber
        self.writes["patch"] += 1
        return await self.api.patch(res, meta["name"], patch, namespace=meta["namespace"])

    # -- the MCPServer itself -------------------------------------------------------------------------

    def observed_status(self, server: Body) -> Body:
        """The server's status, or the one this applier last wrote if `server` is the copy it was based on.

        Such a copy has not caught up with that write yet (its watch event is on its way): judging from
        it would write the same status again (with fresh condition timestamps).
        """
        meta = server["metadata"]
        key = (meta["namespace"], meta["name"])
        written = self._statuses.get(key)
        if written is not None:
            if written[0] == str(meta.get("resourceVersion")):
                return kube.loads(zlib.decompress(written[1]))  # type: ignore[no-any-return]
            del self._statuses[key]  # the cache caught up with the write
        return dict(server.get("status") or {})

    async def set_status(self, server: Body, status: Body) -> bool:
        """Write `status` through the subresource when it differs from the observed one (see above)."""
        if self.observed_status(server) == status:
            return False
        meta = server["metadata"]
        key = (meta["namespace"], meta["name"])
        await self.api.patch(
            resources.MCPSERVERS,
            meta["name"],
            {"status": status},
            namespace=meta["namespace"],
            subresource="status",
        )
        self.writes["status"] += 1
        encoded = zlib.compress(kube.dumps(status), 1)
        self._statuses[key] = (str(meta.get("resourceVersion")), encoded)
        return True

    async def set_finalizer(self, server: Body, *, present: bool) -> Body:
        """Add or remove the operator's finalizer, guarded by resourceVersion.

        A stale copy fails the JSON patch `test` step, which the API server answers with 422 Invalid; the
        pass is retried and reads the newer copy from the cache.
        """
        meta = server["metadata"]
        current = list(meta.get("finalizers") or [])
        wanted = [item for item in current if item != constants.FINALIZER]
        if present:
            wanted.append(constants.FINALIZER)
        if wanted == current:
            return server
        operations = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {
                "op": "add" if "finalizers" not in meta else "replace",
                "path": "/metadata/finalizers",
                "value": wanted,
            },
        ]
        self.writes["finalizer"] += 1
        return await self.api.patch(
            resources.MCPSERVERS, meta["name"], operations, namespace=meta["namespace"], patch_type="json"
        )

    async def record_event(self, server: Body, *, type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event on the MCPServer (`kubectl describe` shows it)."""
        meta = server["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": server.get("apiVersion", resources.MCPSERVERS.api_version),
                "kind": constants.MCPSERVER_KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": constants.MANAGED_BY},
            "reportingComponent": constants.MANAGED_BY,
            "reportingInstance": constants.MANAGED_BY,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.writes["event"] += 1
        await self.api.create(resources.EVENTS, event, namespace=meta["namespace"])

    # -- the discovery handshake ----------------------------------------------------------------------

    async def release_grant(self, *, namespace: str, rolebinding: str) -> bool:
        """Tell discovery the operator let go of `namespace` (annotation on the grant's RoleBinding)."""
        patch = {"metadata": {"annotations": {discovery_constants.RELEASED_ANNOTATION: "true"}}}
        try:
            await self.api.patch(resources.ROLEBINDINGS, rolebinding, patch, namespace=namespace)
        except kube.ApiError as error:
            if error.status in (403, 404):  # already revoked: nothing left to release
                return False
            raise
        self.writes["release"] += 1
        return True


def is_subset(desired: Any, observed: Any) -> bool:
    """True when every field of `desired` is present and equal in `observed` (lists element-wise)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            key in observed and is_subset(value, observed[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(desired) == len(observed)
            and all(is_subset(d, o) for d, o in zip(desired, observed, strict=True))
        )
    return bool(desired == observed)


class Lru(Generic[K, V]):
    """A bounded map that evicts the least recently used entry, on a plain dict (insertion order).

    cachetools.LRUCache keeps three structures per entry (data, size, order: ~250 B); at 70 000 records
    that alone was 17 MiB of the operator's RSS.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._data.pop(key, None)
        if value is not None:
            self._data[key] = value  # most recently used last
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._data.pop(key, None)
        self._data[key] = value
        if len(self._data) > self.maxsize:
            # The oldest 1/64 at once: finding a plain dict's oldest entry scans the slots that earlier
            # evictions emptied (until a resize compacts them), ~11 us per insert at 50 000 entries if
            # done one at a time; in batches that scan is shared (~0.5 us), at a dict's memory per entry
            # (an OrderedDict costs ~46 B more: 3 MiB at 70 000 records).
            for stale in list(itertools.islice(self._data, max(1, self.maxsize // 64))):
                del self._data[stale]

    def __delitem__(self, key: K) -> None:
        del self._data[key]

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._data.pop(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _key(manifest: Body) -> ObjectKey:
    meta = manifest["metadata"]
    # Interned: thousands of records share each apiVersion, kind and namespace string.
    return (
        sys.intern(manifest["apiVersion"]),
        sys.intern(manifest["kind"]),
        sys.intern(meta.get("namespace", "")),
        meta["name"],
    )


def _digest(manifest: Body) -> bytes:
    try:
        encoded = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)  # ~10x json.dumps
    except TypeError:  # what orjson refuses (non-string keys, integers beyond 64 bits)
        encoded = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(encoded, digest_size=16).digest()


def _applied(digest: bytes, obj: Body) -> Applied:
    generation = (obj.get("metadata") or {}).get("generation")
    return Applied(digest, _resource_version(obj), generation if isinstance(generation, int) else None)


def _only_status_moved(manifest: Body, slim: Body, record: Applied) -> bool:
    """True when a slim cached copy changed since our write only where the operator owns nothing.

    The spec is unchanged while the generation is the one our write got (a Deployment's rollout
    progress, for one, moves only status); labels and ownerReferences are in the slim copy. Annotations
    are not: a manifest that sets some is judged on a full read.
    """
    meta, observed_meta = manifest["metadata"], slim.get("metadata") or {}
    return (
        record.generation is not None
        and observed_meta.get("generation") == record.generation
        and "annotations" not in meta
        and is_subset(meta.get("labels") or {}, observed_meta.get("labels") or {})
        and is_subset(meta.get("ownerReferences") or [], observed_meta.get("ownerReferences") or [])
    )


def _resource_version(obj: Body) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")

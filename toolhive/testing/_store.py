"""The object store of the loopback API: every write, its rules, events and the built-in controllers.

Called by the loopback server, always on the server's event-loop thread (no locks needed). Stored
objects are never mutated after they are stored: a write builds a new dict, so readers and watch
fan-out can share references. Errors are `ApiStatusError` carrying the real server's Status body.
The small controllers the API server and kube-controller-manager run (namespace lifecycle, garbage
collection, CRD cleanup, default ServiceAccount and root CA ConfigMap) run here, just after the
write that triggers them, on the same loop. It never runs workload controllers.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import functools
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from toolhive.testing import (
    _authz,
    _cel,
    _fields,
    _kinds,
    _patches,
    _resources,
    _schema,
    _selectors,
    _validation,
)

Obj = dict[str, Any]
ObjectRef = tuple[tuple[str, str], str, str]  # (collection key, namespace, name)
Admit = Callable[[_resources.ResourceType, Obj, "Obj | None"], None]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class ApiStatusError(Exception):
    """An API error answered with a Kubernetes `Status` body."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.headers: dict[str, str] = {}

    def body(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def group_resource(rt: _resources.ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _details(rt: _resources.ResourceType, name: str, **extra: Any) -> Obj:
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details.update(extra)
    return details


def not_found(rt: _resources.ResourceType, name: str) -> ApiStatusError:
    return ApiStatusError(
        404, "NotFound", f'{group_resource(rt)} "{name}" not found', details=_details(rt, name)
    )


def bad_request(message: str) -> ApiStatusError:
    return ApiStatusError(400, "BadRequest", message)


def conflict(rt: _resources.ResourceType, name: str, why: str = "") -> ApiStatusError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiStatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {group_resource(rt)} "{name}": {why}',
        details=_details(rt, name),
    )


def invalid(rt: _resources.ResourceType, name: str, errors: list[_validation.FieldError]) -> ApiStatusError:
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    lines = [e.message for e in errors]
    summary = lines[0] if len(lines) == 1 else "[" + ", ".join(lines) + "]"
    causes = [{"reason": e.reason, "message": e.detail, "field": e.field} for e in errors]
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = causes
    return ApiStatusError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details=details)


def now() -> str:
    """The current time as the API writes timestamps (whole seconds, UTC)."""
    return _timestamp(int(time.time()))


@functools.lru_cache(maxsize=2)
def _timestamp(second: int) -> str:
    # Formatted once per second: strftime for every write was a measurable part of a request.
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def view(obj: Obj, rt: _resources.ResourceType) -> Obj:
    """The object as seen through `rt`'s version (CRD versions share storage; no conversion)."""
    if obj.get("apiVersion") == rt.api_version:
        return obj
    out = dict(obj)
    out["apiVersion"] = rt.api_version
    return out


# What json.dumps(obj, separators=(",", ":")) gives, without its cycle bookkeeping per container (~20% of
# an encoding): API objects are decoded JSON, trees that cannot contain a cycle.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def encode(obj: Any) -> bytes:
    """Compact JSON, as every response body and watch event is sent."""
    return _ENCODER.encode(obj).encode()


@dataclasses.dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None
    namespace: str
    # apiVersion -> the object as seen in it, encoded; "TYPE apiVersion" -> a watch line embedding them
    _encoded: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def forget_encoding(self) -> None:
        self._encoded.clear()

    def encoded_object(self, rt: _resources.ResourceType) -> bytes:
        data = self._encoded.get(rt.api_version)
        if data is None:
            data = self._encoded[rt.api_version] = encode(view(self.obj, rt))
        return data

    def encoded(self, kind: str, rt: _resources.ResourceType) -> bytes:
        # Byte for byte what encoding {"type": kind, "object": ...} gives, with the object encoded once;
        # each line is built once per event, whatever the number of watchers it is queued for.
        key = f"{kind} {rt.api_version}"
        line = self._encoded.get(key)
        if line is None:
            line = b'{"type":"' + kind.encode() + b'","object":' + self.encoded_object(rt) + b"}\n"
            self._encoded[key] = line
        return line


class Watcher:
    """One open watch: filters events of one collection and queues encoded lines for its stream."""

    def __init__(
        self,
        rt: _resources.ResourceType,
        *,
        namespace: str | None,
        labels: _selectors.LabelSelector,
        fields: _selectors.FieldSelector,
        path: str,
    ) -> None:
        self.rt = rt
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.path = path
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return self.labels.matches(obj.get("metadata", {}).get("labels")) and self.fields.matches(obj)

    def classify(self, event: Event) -> str | None:
        now_matches = self.matches(event.obj)
        if event.type == "MODIFIED":
            was = event.old is not None and self.matches(event.old)
            if was and now_matches:
                return "MODIFIED"
            if now_matches:
                return "ADDED"
            return "DELETED" if was else None
        return event.type if now_matches else None

    def offer(self, event: Event) -> None:
        kind = self.classify(event)
        if kind is not None:
            self.queue.put_nowait(event.encoded(kind, self.rt))

    def close(self) -> None:
        self.queue.put_nowait(None)


class Collection:
    """All objects of one (group, plural), indexed by namespace, with a bounded event history."""

    def __init__(self, key: tuple[str, str], *, namespaced: bool, history: int) -> None:
        self.key = key
        self.namespaced = namespaced
        self.objects: dict[str, dict[str, Obj]] = {}
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted = 0  # events with rv <= compacted may be missing from history
        self.watchers: dict[str | None, set[Watcher]] = {}

    def iter_objects(self, namespace: str | None) -> Iterator[Obj]:
        if namespace is not None:
            yield from self.objects.get(namespace, {}).values()
        else:
            for bucket in self.objects.values():
                yield from bucket.values()

    def count(self, namespace: str) -> int:
        return len(self.objects.get(namespace, {}))


class Store:
    """Objects, resource types, the resourceVersion counter and the built-in controllers."""

    def __init__(self, *, history: int = 10000) -> None:
        self.rv = 0
        self.history_size = history
        self.types: dict[tuple[str, str, str], _resources.ResourceType] = {}
        self.collections: dict[tuple[str, str], Collection] = {}
        self.uids: dict[str, ObjectRef] = {}  # uid -> (key, namespace, name)
        self.dependents: dict[str, set[ObjectRef]] = {}  # owner uid -> dependents
        self.on_removed: list[Callable[[_resources.ResourceType, Obj], None]] = []
        self._work: deque[Callable[[], None]] = deque()
        self._draining = False
        self._ip = 10
        self._rbac_version = 0
        self._rbac_cluster_version = 0
        self._rbac_namespace_versions: dict[str, int] = {}
        # Never forgotten: a version going back to 0 could repeat a token an authorizer cached.
        self._rbac_subject_versions: dict[tuple[str, tuple[str, str]], int] = {}
        self._rbac_role_versions: dict[tuple[str, str], int] = {}
        self._paths = _fields.PathCache()
        self._last_encoded: tuple[Obj, bytes] | None = None  # (object, its encoding): see `encode`
        self._strategies: dict[tuple[str, str, str], tuple[Mapping[str, Any], _patches.Strategy]] = {}
        for rt in _resources.BUILTINS:
            self.register(rt)

    # --- catalogue ------------------------------------------------------------------------------

    def register(self, rt: _resources.ResourceType) -> None:
        self.types[(rt.group, rt.version, rt.plural)] = rt
        if rt.key not in self.collections:
            self.collections[rt.key] = Collection(rt.key, namespaced=rt.namespaced, history=self.history_size)

    def resolve(self, group: str, version: str, plural: str) -> _resources.ResourceType | None:
        return self.types.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for group, version, _ in self.types:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def resource_types(self, group: str, version: str) -> list[_resources.ResourceType]:
        return [rt for (g, v, _), rt in self.types.items() if g == group and v == version]

    def type_for_kind(self, api_version: str, kind: str) -> _resources.ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def storage_type(self, key: tuple[str, str]) -> _resources.ResourceType:
        candidates = [rt for rt in self.types.values() if rt.key == key]
        return max(candidates, key=lambda rt: _resources.version_priority(rt.version))

    # --- reading --------------------------------------------------------------------------------

    def lookup(self, rt: _resources.ResourceType, namespace: str, name: str) -> Obj | None:
        return self.collections[rt.key].objects.get(namespace if rt.namespaced else "", {}).get(name)

    def get(self, rt: _resources.ResourceType, namespace: str, name: str) -> Obj:
        obj = self.lookup(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return view(obj, rt)

    def list_objects(
        self,
        rt: _resources.ResourceType,
        namespace: str | None,
        *,
        labels: _selectors.LabelSelector,
        fields: _selectors.FieldSelector,
        limit: int = 0,
        continue_token: str = "",
    ) -> Obj:
        coll = self.collections[rt.key]
        list_rv = self.rv
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                list_rv, start = int(token["rv"]), (str(token["ns"]), str(token["name"]))
            except (ValueError, KeyError, TypeError):
                raise bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion"
                ) from None
            if list_rv < coll.compacted:
                raise ApiStatusError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start "  # noqa: E501
                    "a new list without the continue parameter, or use the continue token in this response to "  # noqa: E501
                    "retrieve the remainder of the results.",
                )
        pinned = fields.exact("metadata.name")
        if pinned is not None:
            candidates: Iterable[Obj] = (
                o
                for ns_bucket in (
                    [coll.objects.get(namespace, {})] if namespace is not None else coll.objects.values()
                )
                if (o := ns_bucket.get(pinned)) is not None
            )
        else:
            candidates = coll.iter_objects(namespace)
        matching = [
            o for o in candidates if labels.matches(o.get("metadata", {}).get("labels")) and fields.matches(o)
        ]
        matching.sort(key=_sort_key)
        if start is not None:
            matching = [o for o in matching if _sort_key(o) > start]
        meta: Obj = {"resourceVersion": str(list_rv)}
        if limit and len(matching) > limit:
            last = matching[limit - 1]
            token = {"rv": list_rv, "ns": _sort_key(last)[0], "name": _sort_key(last)[1]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(matching) - limit
            matching = matching[:limit]
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": [view(o, rt) for o in matching],
        }

    def rbac_objects(self, kind: str, namespace: str | None = None) -> Iterable[Mapping[str, Any]]:
        """`_authz.RbacObjects`: the stored Roles, ClusterRoles, RoleBindings or ClusterRoleBindings."""
        plural = {
            "Role": "roles",
            "ClusterRole": "clusterroles",
            "RoleBinding": "rolebindings",
            "ClusterRoleBinding": "clusterrolebindings",
        }[kind]
        coll = self.collections[("rbac.authorization.k8s.io", plural)]
        return list(coll.iter_objects(namespace if coll.namespaced else None))

    # --- watching -------------------------------------------------------------------------------

    def watch(
        self,
        rt: _resources.ResourceType,
        namespace: str | None,
        *,
        labels: _selectors.LabelSelector,
        fields: _selectors.FieldSelector,
        resource_version: str,
        path: str,
        send_initial_events: bool = False,
    ) -> Watcher:
        """Open a watch: queue the initial or replayed events, then register for live ones.

        An expired `resource_version` queues a single ERROR event with a 410 Status (as the real
        server does) and nothing else; the caller ends the stream after it.
        """
        coll = self.collections[rt.key]
        watcher = Watcher(rt, namespace=namespace, labels=labels, fields=fields, path=path)
        if resource_version in ("", "0") or send_initial_events:
            for obj in sorted(coll.iter_objects(namespace), key=_sort_key):
                if watcher.matches(obj):
                    watcher.queue.put_nowait(encode({"type": "ADDED", "object": view(obj, rt)}) + b"\n")
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise bad_request(
                    f'resourceVersion: Invalid value: "{resource_version}": must be an integer'
                ) from None
            if since < coll.compacted:
                status = ApiStatusError(
                    410, "Expired", f"too old resource version: {since} ({coll.compacted + 1})"
                ).body()
                watcher.queue.put_nowait(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                watcher.queue.put_nowait(None)
                return watcher
            # The history is in resourceVersion order: walk back to `since` only (a resumed watch
            # is usually recent; scanning the whole history per watch cost O(history) each).
            newer: list[Event] = []
            for event in reversed(coll.history):
                if event.rv <= since:
                    break
                if namespace is None or event.namespace == namespace:
                    newer.append(event)
            for event in reversed(newer):
                watcher.offer(event)
        coll.watchers.setdefault(namespace, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        coll = self.collections.get(watcher.rt.key)  # gone when its CRD was deleted
        bucket = coll.watchers.get(watcher.namespace) if coll is not None else None
        if bucket is not None:
            bucket.discard(watcher)

    def open_watchers(self) -> Iterator[Watcher]:
        for coll in self.collections.values():
            for bucket in coll.watchers.values():
                yield from bucket

    def compact(self) -> None:
        """Forget all event history (what etcd compaction does); older resourceVersions get 410."""
        for coll in self.collections.values():
            coll.history.clear()
            coll.compacted = self.rv

    def rbac_version(self) -> int:
        """Changes after every RBAC object write (lets the authorizer cache resolved rules)."""
        return self._rbac_version

    def rbac_versions(self, namespace: str) -> tuple[int, int]:
        """`_authz.RbacObjects.rbac_versions`: (ClusterRole/ClusterRoleBinding writes, the namespace's
        Role/RoleBinding writes); the authorizer's cached rules for a namespace stay valid until one moves."""
        return self._rbac_cluster_version, self._rbac_namespace_versions.get(namespace, 0)

    def rbac_subject_version(self, namespace: str, subject: tuple[str, str]) -> int:
        """`_authz.Authorizer`'s finer token: writes of the namespace's RoleBindings that have (or had) a
        subject with this `_authz.subject_key`."""
        return self._rbac_subject_versions.get((namespace, subject), 0)

    def rbac_role_version(self, namespace: str, name: str) -> int:
        """`_authz.Authorizer`'s finer token: writes of one Role."""
        return self._rbac_role_versions.get((namespace, name), 0)

    def _emit(self, coll: Collection, kind: str, obj: Obj, old: Obj | None) -> None:
        namespace = obj["metadata"].get("namespace", "") if coll.namespaced else ""
        if coll.key[0] == "rbac.authorization.k8s.io":
            self._rbac_version += 1
            if coll.namespaced:
                self._rbac_namespace_versions[namespace] = self._rbac_namespace_versions.get(namespace, 0) + 1
                if coll.key[1] == "roles":
                    key = (namespace, obj["metadata"]["name"])
                    self._rbac_role_versions[key] = self._rbac_role_versions.get(key, 0) + 1
                else:  # both versions' subjects: whom the binding applied to and whom it applies to now
                    subjects = [
                        subject
                        for version in (obj, old or {})
                        if isinstance(listed := version.get("subjects"), list)
                        for subject in listed
                    ]
                    for subject in subjects:
                        found = _authz.subject_key(subject, namespace)
                        if found is not None:
                            versions = self._rbac_subject_versions
                            versions[(namespace, found)] = versions.get((namespace, found), 0) + 1
            else:
                self._rbac_cluster_version += 1
        event = Event(int(obj["metadata"]["resourceVersion"]), kind, obj, old, namespace)
        history = coll.history
        if history and len(history) == history.maxlen:
            coll.compacted = history.popleft().rv
        # Kept in resourceVersion order (watch resumption walks it back from the end). Only a store used
        # without an event loop runs controllers inside a write, so a later version can be emitted first.
        position = len(history)
        while position and history[position - 1].rv > event.rv:
            position -= 1
        if history.maxlen != 0:
            history.insert(position, event)
        else:
            coll.compacted = event.rv
        for bucket_key in (namespace, None) if coll.namespaced else (None,):
            for watcher in coll.watchers.get(bucket_key, ()):
                watcher.offer(event)
        # The write's response is usually this very object: it reuses the bytes a watch line embedded.
        data = event._encoded.get(obj.get("apiVersion", ""))
        self._last_encoded = (obj, data) if data is not None else None
        event.forget_encoding()  # the queues hold the bytes; the history need not

    # --- writing --------------------------------------------------------------------------------

    def encode(self, obj: Obj) -> bytes:
        """`encode(obj)`, reusing the bytes of the last emitted object's watch events when it is `obj`."""
        last = self._last_encoded
        if last is not None and last[0] is obj:
            return last[1]
        return encode(obj)

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def check_namespace(
        self, rt: _resources.ResourceType, namespace: str, name: str, *, creating: bool
    ) -> None:
        if not rt.namespaced:
            return
        ns = self.collections[("", "namespaces")].objects.get("", {}).get(namespace)
        if ns is None:
            raise ApiStatusError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiStatusError(
                403,
                "Forbidden",
                f'{group_resource(rt)} "{name}" is forbidden: unable to create new content in namespace {namespace} '  # noqa: E501
                "because it is being terminated",
                details=_details(
                    rt,
                    name,
                    causes=[
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                ),
            )

    def _check_body(self, rt: _resources.ResourceType, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml, application/vnd.kubernetes.protobuf"
            )
        # The decoder defaults a missing kind/apiVersion from the URL for built-in kinds; a custom
        # resource (decoded as unstructured) must name its kind, its apiVersion is still defaulted.
        if not body.get("kind"):
            if rt.crd:
                raise bad_request(
                    f"Object 'Kind' is missing in '{json.dumps(body, separators=(',', ':'))[:200]}'"
                )
            body["kind"] = rt.kind
        if not body.get("apiVersion"):
            body["apiVersion"] = rt.api_version
        if body["kind"] != rt.kind or body["apiVersion"] not in self._versions_of(rt):
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the expected API version "
                f"({rt.api_version})"
                if body["kind"] == rt.kind
                else f"the kind in the data ({body['kind']}) does not match the expected kind ({rt.kind})"
            )
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("json: cannot unmarshal metadata into Go struct field of type v1.ObjectMeta")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        body["apiVersion"] = rt.api_version
        return body

    def _versions_of(self, rt: _resources.ResourceType) -> set[str]:
        if not rt.crd:
            return {rt.api_version}
        return {t.api_version for t in self.types.values() if t.key == rt.key}

    def _strategy(self, rt: _resources.ResourceType) -> _patches.Strategy:
        if rt.strategy is not None:
            return rt.strategy
        # Derived once per schema: a CRD update registers new types with new schema objects, which
        # the identity check notices.
        schema = rt.schema or {}
        key = (rt.group, rt.version, rt.plural)
        cached = self._strategies.get(key)
        if cached is None or cached[0] is not schema:
            cached = self._strategies[key] = (schema, _schema_strategy(schema))
        return cached[1]

    def _admit_schema(
        self, rt: _resources.ResourceType, obj: Obj, old: Obj | None, *, strict: bool
    ) -> list[_validation.FieldError]:
        """Prune, default and validate a custom resource against its version's structural schema."""
        schema = rt.schema or {}
        unknown: list[str] = []
        pruned = _schema.prune(obj, schema, root=True, unknown=unknown)
        meta = pruned.get("metadata")
        if isinstance(meta, dict):
            for key in [k for k in meta if k not in _kinds.OBJECT_META]:
                unknown.append(f"metadata.{key}")
                del meta[key]
        if unknown and strict:
            detail = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise bad_request(f"strict decoding error: {detail}")
        obj.clear()
        obj.update(pruned)
        _schema.apply_defaults(obj, schema)
        errors: list[_validation.FieldError] = []
        _schema.validate(obj, schema, "", errors, root=True, old=old if old is not None else _cel.ABSENT)
        return errors

    def _write(
        self,
        rt: _resources.ResourceType,
        new: Obj,
        old: Obj | None,
        *,
        status_write: bool,
        manager: str,
        operation: str,
        admit: Admit | None,
        strict: bool = False,
        applied: Mapping[str, Any] | None = None,
    ) -> Obj:
        """The common write path of create, update and patch: split, default, validate, store, emit."""
        coll = self.collections[rt.key]
        meta = new["metadata"]
        name = meta.get("name", "")
        creating = old is None
        if old is not None:
            old_meta = old["metadata"]
            for key in ("uid",):
                if meta.get(key) not in (None, "", old_meta.get(key)):
                    raise invalid(
                        rt, name, [_validation.invalid(f"metadata.{key}", meta[key], "field is immutable")]
                    )
            for key in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generateName",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if "managedFields" not in meta and "managedFields" in old_meta:
                meta["managedFields"] = old_meta["managedFields"]
        # --- /status split: each side of the split keeps the other side's content.
        if rt.status:
            if status_write:
                assert old is not None
                status = new.get("status")
                new = _patches.clone(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
                meta = new["metadata"]
            elif old is not None:
                if "status" in old:
                    new["status"] = _patches.clone(old["status"])
                else:
                    new.pop("status", None)
            else:
                new.pop("status", None)
        # --- defaults and validation
        errors: list[_validation.FieldError] = []
        if rt.crd:
            errors.extend(self._admit_schema(rt, new, old, strict=strict))
        else:
            unknown = _kinds.unknown_fields(rt, new)
            if unknown and strict:
                raise bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
                )
            for field in unknown:
                if field.startswith("metadata."):
                    new["metadata"].pop(field.removeprefix("metadata."), None)
                else:
                    new.pop(field, None)
            try:
                _kinds.decode_check(rt, new)
            except _kinds.DecodeError as exc:
                raise bad_request(str(exc)) from None
            _kinds.default(rt, new, allocate_ip=self._allocate_ip)
            errors.extend(_kinds.errors(rt, new, old))
        if rt.kind == "Namespace" and creating:
            new.setdefault("status", {})["phase"] = "Active"
        if rt.kind == "CustomResourceDefinition" and not status_write:
            errors.extend(_kinds.crd_errors(new))
            if old is not None and not errors:
                errors.extend(_crd_update_errors(new, old))
        errors.extend(_validation.metadata_errors(meta, name_rule=rt.name_rule))
        if old is not None and old["metadata"].get("deletionTimestamp"):
            before = set(old["metadata"].get("finalizers") or [])
            added = [f for f in meta.get("finalizers") or [] if f not in before]
            if added:
                shown = ", ".join(f'"{f}"' for f in added)
                errors.append(
                    _validation.forbidden(
                        "metadata.finalizers",
                        f"no new finalizers can be added if the object is being deleted, found new finalizers "  # noqa: E501
                        f"[]string{{{shown}}}",
                    )
                )
        if errors:
            raise invalid(rt, name, errors)
        # --- generation: bumped when anything but metadata and status changes
        if rt.generation:
            if creating:
                meta["generation"] = 1
            elif _spec_part(new) != _spec_part(old or {}):
                meta["generation"] = int(meta.get("generation") or 1) + 1
        if admit is not None:
            admit(rt, new, old)
        # --- ownership
        _fields.record(
            old,
            new,
            manager=manager,
            operation=operation,
            api_version=rt.api_version,
            strategy=self._strategy(rt),
            status=status_write,
            now=now(),
            applied=applied,
            cache=self._paths,
        )
        if old is not None and _without_volatile(new) == _without_volatile(old):
            return view(old, rt)  # a no-op write changes nothing, not even the resourceVersion
        if creating:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
        meta["resourceVersion"] = self._next_rv()
        new["apiVersion"] = rt.api_version
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        coll.objects.setdefault(namespace, {})[name] = new
        self._index(rt, new, old)
        self._emit(coll, "ADDED" if creating else "MODIFIED", new, old)
        self._after_write(rt, new, old)
        return new

    def _allocate_ip(self) -> str:
        self._ip += 1
        return f"10.96.{(self._ip // 250) % 250}.{self._ip % 250 + 1}"

    def create(
        self,
        rt: _resources.ResourceType,
        namespace: str,
        body: Any,
        *,
        manager: str,
        admit: Admit | None = None,
        strict: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        obj = self._check_body(rt, body, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ):
            meta.pop(key, None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
        name = meta.get("name") or ""
        self.check_namespace(rt, namespace, name, creating=True)
        if name and self.lookup(rt, namespace, name) is not None:
            raise ApiStatusError(
                409,
                "AlreadyExists",
                f'{group_resource(rt)} "{name}" already exists',
                details=_details(rt, name),
            )
        if dry_run:
            return obj
        return self._write(
            rt, obj, None, status_write=False, manager=manager, operation="Update", admit=admit, strict=strict
        )

    def update(
        self,
        rt: _resources.ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        status_write: bool,
        manager: str,
        admit: Admit | None = None,
        strict: bool = False,
    ) -> Obj:
        obj = self._check_body(rt, body, namespace)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        old = self.lookup(rt, namespace, name)
        if old is None:
            self.check_namespace(rt, namespace, name, creating=False)
            raise not_found(rt, name)
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
            raise conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old['metadata']['uid']}",  # noqa: E501
            )
        result = self._write(
            rt,
            obj,
            old,
            status_write=status_write,
            manager=manager,
            operation="Update",
            admit=admit,
            strict=strict,
        )
        self._finish_if_released(rt, result)
        return result

    def patch(
        self,
        rt: _resources.ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        *,
        content_type: str,
        status_write: bool,
        manager: str,
        force: bool = False,
        admit: Admit | None = None,
        strict: bool = False,
        handed_over: bool = False,
    ) -> tuple[int, Obj]:
        """Apply a patch; returns (201, created) for an apply that creates, else (200, object).

        `handed_over`: the caller never uses `patch` again (a freshly decoded request body), so an apply
        configuration is kept as given instead of copied first."""
        old = self.lookup(rt, namespace, name)
        if content_type == "application/apply-patch+yaml":
            return self._apply(
                rt,
                namespace,
                name,
                patch if handed_over else _patches.clone(patch),
                old,
                status_write=status_write,
                manager=manager,
                force=force,
                admit=admit,
                strict=strict,
            )
        if old is None:
            self.check_namespace(rt, namespace, name, creating=False)
            raise not_found(rt, name)
        current = view(old, rt)
        try:
            if content_type == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise _patches.PatchError(
                        400, "json: cannot unmarshal into Go value of type map[string]interface {}"
                    )
                result = _patches.merge_patch(current, patch)
            elif content_type == "application/json-patch+json":
                result = _patches.json_patch(current, patch)
            elif content_type == "application/strategic-merge-patch+json":
                if rt.strategy is None:
                    raise ApiStatusError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch format is not supported",
                    )
                if not isinstance(patch, dict):
                    raise _patches.PatchError(
                        400, "json: cannot unmarshal into Go value of type map[string]interface {}"
                    )
                result = _patches.strategic_merge_patch(current, patch, rt.strategy)
            else:
                raise ApiStatusError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}",  # noqa: E501
                )
        except _patches.PatchError as exc:
            if exc.code == 422:
                raise ApiStatusError(422, "Invalid", exc.message, details=_details(rt, name)) from None
            raise bad_request(exc.message) from None
        if not isinstance(result, dict):
            raise bad_request("the patched object is not a JSON object")
        result = _patches.clone(result)
        meta = result.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if result.get("kind") != rt.kind or result.get("apiVersion") not in self._versions_of(rt):
            raise bad_request("the patch may not change the object's kind or apiVersion")
        if meta.get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        stored = self._write(
            rt,
            result,
            old,
            status_write=status_write,
            manager=manager,
            operation="Update",
            admit=admit,
            strict=strict,
        )
        self._finish_if_released(rt, stored)
        return 200, view(stored, rt)

    def _apply(
        self,
        rt: _resources.ResourceType,
        namespace: str,
        name: str,
        config: Any,
        old: Obj | None,
        *,
        status_write: bool,
        manager: str,
        force: bool,
        admit: Admit | None,
        strict: bool,
    ) -> tuple[int, Obj]:
        if not isinstance(config, dict):
            raise bad_request("error decoding YAML: the apply configuration must be an object")
        config = self._check_body(rt, config, namespace)  # the caller's copy, or one handed over
        meta = config["metadata"]
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        if meta.get("managedFields"):
            raise bad_request("metadata.managedFields must be nil")
        rv = meta.pop("resourceVersion", None)
        if old is not None and rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if old is None and status_write:
            raise not_found(rt, name)
        strategy = self._strategy(rt)
        try:
            merged = _fields.apply(
                view(old, rt) if old else None,
                config,
                manager=manager,
                force=force,
                strategy=strategy,
                status=status_write,
                cache=self._paths,
            )
        except _fields.ApplyConflict as exc:
            lines = [
                f'conflict with "{m}" using {rt.api_version}: {_fields.dotted(p)}' for m, p in exc.conflicts
            ]
            message = (
                f"Apply failed with {len(lines)} conflict{'s' if len(lines) > 1 else ''}: " + "\n".join(lines)
                if len(lines) > 1
                else f"Apply failed with 1 conflict: {lines[0]}"
            )
            raise ApiStatusError(
                409,
                "Conflict",
                message,
                details=_details(
                    rt,
                    name,
                    causes=[
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{m}" using {rt.api_version}',
                            "field": _fields.dotted(p),
                        }
                        for m, p in exc.conflicts
                    ],
                ),
            ) from None
        merged["apiVersion"] = rt.api_version
        merged["kind"] = rt.kind
        if old is None:
            self.check_namespace(rt, namespace, name, creating=True)
            merged["metadata"].pop("resourceVersion", None)
            created = self._write(
                rt,
                merged,
                None,
                status_write=False,
                manager=manager,
                operation="Apply",
                admit=admit,
                strict=strict,
                applied=config,
            )
            return 201, view(created, rt)
        merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        stored = self._write(
            rt,
            merged,
            old,
            status_write=status_write,
            manager=manager,
            operation="Apply",
            admit=admit,
            strict=strict,
            applied=config,
        )
        self._finish_if_released(rt, stored)
        return 200, view(stored, rt)

    # --- deleting -------------------------------------------------------------------------------

    def delete(
        self,
        rt: _resources.ResourceType,
        namespace: str,
        name: str,
        *,
        options: Mapping[str, Any],
        admit: Admit | None = None,
    ) -> tuple[bool, Obj]:
        """Delete or start deleting; returns (removed now?, the last state of the object)."""
        old = self.lookup(rt, namespace, name)
        if old is None:
            if rt.namespaced:
                self.check_namespace(rt, namespace, name, creating=False)
            raise not_found(rt, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
            raise conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {old['metadata']['uid']}",  # noqa: E501
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise conflict(
                rt,
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, ResourceVersion in object meta: {old['metadata']['resourceVersion']}",  # noqa: E501
            )
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise invalid(
                rt,
                name,
                [
                    _validation.FieldError(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',  # noqa: E501
                    )
                ],
            )
        return self._delete(rt, old, policy=policy or "Background")

    def _delete(self, rt: _resources.ResourceType, old: Obj, *, policy: str) -> tuple[bool, Obj]:
        meta = old["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if rt.kind == "Namespace":
            if not meta.get("deletionTimestamp"):
                new = _patches.clone(old)
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                stored = self._store_system(rt, new, old)
                self._soon(lambda: self._finalize_namespace(meta["name"]))
                return False, view(stored, rt)
            return False, view(old, rt)
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        if extra and extra not in finalizers and self.dependents.get(meta["uid"]):
            finalizers.append(extra)
        if (
            rt.kind == "CustomResourceDefinition"
            and "customresourcecleanup.apiextensions.k8s.io" not in finalizers
        ):
            finalizers.append("customresourcecleanup.apiextensions.k8s.io")
        if not finalizers:
            return True, view(self._remove(rt, old), rt)
        if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
            return False, view(old, rt)
        new = _patches.clone(old)
        new["metadata"].setdefault("deletionTimestamp", now())
        new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        new["metadata"]["finalizers"] = finalizers
        stored = self._store_system(rt, new, old)
        uid = meta["uid"]
        if "orphan" in finalizers:
            self._soon(lambda: self._orphan(uid))
        if "foregroundDeletion" in finalizers:
            self._soon(lambda: self._foreground(uid))
        if "customresourcecleanup.apiextensions.k8s.io" in finalizers:
            self._soon(lambda: self._cleanup_crd(uid))
        return False, view(stored, rt)

    def set_namespace_finalizers(self, name: str, finalizers: list[str]) -> Obj:
        """The `namespaces/{name}/finalize` subresource: replace spec.finalizers (may release it)."""
        rt = self.types[("", "v1", "namespaces")]
        current = self.lookup(rt, "", name)
        if current is None:
            raise not_found(rt, name)
        new = _patches.clone(current)
        if finalizers:
            new.setdefault("spec", {})["finalizers"] = finalizers
        else:
            new.setdefault("spec", {}).pop("finalizers", None)
        stored = self._store_system(rt, new, current)
        self._soon(lambda: self._finalize_namespace(name))
        return view(stored, rt)

    def _store_system(self, rt: _resources.ResourceType, new: Obj, old: Obj) -> Obj:
        """A write by the server itself (controllers): no validation, a new resourceVersion, an event."""
        coll = self.collections[rt.key]
        new["metadata"]["resourceVersion"] = self._next_rv()
        namespace = new["metadata"].get("namespace", "") if rt.namespaced else ""
        coll.objects.setdefault(namespace, {})[new["metadata"]["name"]] = new
        self._index(rt, new, old)
        self._emit(coll, "MODIFIED", new, old)
        self._finish_if_released(rt, new)
        return new

    def _finish_if_released(self, rt: _resources.ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if rt.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"):
                return
            current = self.lookup(rt, meta.get("namespace", ""), meta["name"])
            if current is obj:
                self._remove(rt, obj)

    def _remove(self, rt: _resources.ResourceType, old: Obj) -> Obj:
        coll = self.collections[rt.key]
        meta = old["metadata"]
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        bucket = coll.objects.get(namespace, {})
        bucket.pop(meta["name"], None)
        if not bucket:
            coll.objects.pop(namespace, None)
        final = dict(old)
        final["metadata"] = dict(meta)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._index(rt, None, old)
        self._emit(coll, "DELETED", final, old)
        uid = meta["uid"]
        if self.dependents.get(uid):
            self._soon(lambda: self._collect(uid))
        for ref in meta.get("ownerReferences") or []:
            owner = self.uids.get(ref.get("uid", ""))
            if owner is not None:
                self._soon(functools.partial(self._foreground, str(ref["uid"])))
        if rt.namespaced and namespace:
            ns = self.collections[("", "namespaces")].objects.get("", {}).get(namespace)
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self._soon(lambda: self._finalize_namespace(namespace))
        if rt.kind == "CustomResourceDefinition":
            self._unregister_crd(old)
        if rt.crd:
            crd = self.lookup(
                self.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")], "", rt.crd
            )
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                crd_uid = crd["metadata"]["uid"]
                self._soon(lambda: self._cleanup_crd(crd_uid))
        for hook in self.on_removed:
            hook(rt, old)
        return final

    def _index(self, rt: _resources.ResourceType, new: Obj | None, old: Obj | None) -> None:
        def ref_of(o: Obj) -> ObjectRef:
            return (
                rt.key,
                o["metadata"].get("namespace", "") if rt.namespaced else "",
                o["metadata"]["name"],
            )

        if old is not None:
            for ref in old["metadata"].get("ownerReferences") or []:
                deps = self.dependents.get(ref.get("uid", ""))
                if deps is not None:
                    deps.discard(ref_of(old))
                    if not deps:
                        del self.dependents[ref["uid"]]
            if new is None:
                self.uids.pop(old["metadata"]["uid"], None)
        if new is not None:
            self.uids[new["metadata"]["uid"]] = ref_of(new)
            added_owner = False
            for ref in new["metadata"].get("ownerReferences") or []:
                self.dependents.setdefault(ref["uid"], set()).add(ref_of(new))
                added_owner = True
            if added_owner:
                dependent = ref_of(new)
                self._soon(lambda: self._collect_dependent(dependent))

    # --- controllers ----------------------------------------------------------------------------

    def _soon(self, work: Callable[[], None]) -> None:
        self._work.append(work)
        if not self._draining:
            self._draining = True
            try:
                asyncio.get_running_loop().call_soon(self._drain)
            except RuntimeError:
                self._drain()

    def _drain(self) -> None:
        try:
            while self._work:
                self._work.popleft()()
        finally:
            self._draining = False

    def _resolve_ref(self, ref: ObjectRef) -> tuple[_resources.ResourceType, Obj] | None:
        key, namespace, name = ref
        obj = self.collections[key].objects.get(namespace, {}).get(name)
        return (self.storage_type(key), obj) if obj is not None else None

    def _owner_alive(self, dep_ref: ObjectRef, owner: Mapping[str, Any]) -> bool:
        where = self.uids.get(owner.get("uid", ""))
        if where is None:
            return False
        key, namespace, name = where
        owner_namespaced = self.collections[key].namespaced
        if owner_namespaced and namespace != dep_ref[1]:
            return False  # an owner must be cluster-scoped or in the dependent's namespace
        return name == owner.get("name")

    def _collect_dependent(self, dep_ref: ObjectRef) -> None:
        """Garbage collection: delete a dependent whose owners are all gone (background)."""
        key, namespace, name = dep_ref
        obj = self.collections[key].objects.get(namespace, {}).get(name)
        if obj is None:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs or any(self._owner_alive(dep_ref, r) for r in refs):
            return
        if not obj["metadata"].get("deletionTimestamp"):
            # The storage type only now: finding it scans every registered type.
            self._delete(self.storage_type(key), obj, policy="Background")

    def _collect(self, owner_uid: str) -> None:
        for dep_ref in list(self.dependents.get(owner_uid, ())):
            self._collect_dependent(dep_ref)

    def _foreground(self, owner_uid: str) -> None:
        """Foreground deletion: delete dependents; drop the finalizer once no blocking one is left."""
        where = self.uids.get(owner_uid)
        if where is None:
            return
        found = self._resolve_ref(where)
        if found is None:
            return
        rt, owner = found
        if "foregroundDeletion" not in (owner["metadata"].get("finalizers") or []):
            return
        blocking = False
        for dep_ref in list(self.dependents.get(owner_uid, ())):
            dep = self._resolve_ref(dep_ref)
            if dep is None:
                continue
            dep_rt, dep_obj = dep
            if not dep_obj["metadata"].get("deletionTimestamp"):
                _, dep_obj = self._delete(dep_rt, dep_obj, policy="Foreground")
            still = self._resolve_ref(dep_ref)
            if still is not None and any(
                r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
                for r in still[1]["metadata"].get("ownerReferences") or []
            ):
                blocking = True
        if not blocking:
            self._drop_finalizer(rt, owner, "foregroundDeletion")

    def _orphan(self, owner_uid: str) -> None:
        where = self.uids.get(owner_uid)
        found = self._resolve_ref(where) if where else None
        if found is None:
            return
        rt, owner = found
        for dep_ref in list(self.dependents.get(owner_uid, ())):
            dep = self._resolve_ref(dep_ref)
            if dep is None:
                continue
            dep_rt, dep_obj = dep
            new = _patches.clone(dep_obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._store_system(dep_rt, new, dep_obj)
        self._drop_finalizer(rt, owner, "orphan")

    def _drop_finalizer(self, rt: _resources.ResourceType, obj: Obj, finalizer: str) -> None:
        current = self.lookup(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        new = _patches.clone(current)
        remaining = [f for f in new["metadata"]["finalizers"] if f != finalizer]
        if remaining:
            new["metadata"]["finalizers"] = remaining
        else:
            new["metadata"].pop("finalizers")
        self._store_system(rt, new, current)

    def _finalize_namespace(self, name: str) -> None:
        """Namespace lifecycle: delete the content, report what remains, release once empty."""
        ns_rt = self.types[("", "v1", "namespaces")]
        ns = self.lookup(ns_rt, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for key, coll in list(self.collections.items()):
            if not coll.namespaced or not coll.objects.get(name):
                continue
            rt = self.storage_type(key)
            for obj in list(coll.objects.get(name, {}).values()):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rt, obj, policy="Background")
            for obj in coll.objects.get(name, {}).values():
                remaining[group_resource(rt)] = remaining.get(group_resource(rt), 0) + 1
                for fin in obj["metadata"].get("finalizers") or []:
                    finalizers[fin] = finalizers.get(fin, 0) + 1
        ns = self.lookup(ns_rt, "", name)
        if ns is None:
            return
        new: Obj = _patches.clone(ns)
        conditions = _namespace_conditions(remaining, finalizers)
        new.setdefault("status", {})["conditions"] = conditions
        if not remaining:
            spec_finalizers = [
                f for f in (new.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"
            ]
            new.setdefault("spec", {})["finalizers"] = spec_finalizers
            if not spec_finalizers:
                new["spec"].pop("finalizers")
        if new != ns:
            new = self._store_system(ns_rt, new, ns)
        released = not (new.get("spec") or {}).get("finalizers") and not new["metadata"].get("finalizers")
        if not remaining and released and self.lookup(ns_rt, "", name) is new:
            self._remove(ns_rt, new)

    def _cleanup_crd(self, crd_uid: str) -> None:
        where = self.uids.get(crd_uid)
        found = self._resolve_ref(where) if where else None
        if found is None:
            return
        crd_rt, crd = found
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        coll = self.collections.get(key)
        if coll is not None:
            rt = self.storage_type(key)
            for obj in list(coll.iter_objects(None)):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rt, obj, policy="Background")
            if any(True for _ in coll.iter_objects(None)):
                return
        self._drop_finalizer(crd_rt, crd, "customresourcecleanup.apiextensions.k8s.io")

    def _after_write(self, rt: _resources.ResourceType, new: Obj, old: Obj | None) -> None:
        if rt.kind == "CustomResourceDefinition" and not new["metadata"].get("deletionTimestamp"):
            self._register_crd(new)
        if rt.kind == "Namespace" and old is None:
            self._seed_namespace(new["metadata"]["name"])

    def _register_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        key = (spec["group"], spec["names"]["plural"])
        for k in [k for k, rt in self.types.items() if rt.key == key]:
            del self.types[k]
        for rt in _resources.crd_resource_types(crd):
            self.register(rt)
        crd_rt = self.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        current = self.lookup(crd_rt, "", crd["metadata"]["name"])
        if current is None:
            return
        stored_versions = sorted(
            {v["name"] for v in spec["versions"] if v.get("storage")}
            | set((current.get("status") or {}).get("storedVersions") or [])
        )
        status = {
            "acceptedNames": dict(spec["names"]),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now(),
                },
            ],
            "storedVersions": stored_versions,
        }
        old_status = current.get("status") or {}
        if {k: v for k, v in old_status.items() if k != "conditions"} != {
            k: v for k, v in status.items() if k != "conditions"
        } or not old_status.get("conditions"):
            if old_status.get("conditions"):
                status["conditions"] = old_status["conditions"]
            new = _patches.clone(current)
            new["status"] = status
            self._store_system(crd_rt, new, current)

    def _unregister_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        key = (spec["group"], spec["names"]["plural"])
        for k in [k for k, rt in self.types.items() if rt.key == key]:
            del self.types[k]
        coll = self.collections.pop(key, None)
        if coll is not None:
            for bucket in coll.watchers.values():
                for watcher in bucket:
                    watcher.close()

    def _seed_namespace(self, name: str) -> None:
        """What the ServiceAccount and root-CA controllers add to every new namespace."""
        sa_rt = self.types[("", "v1", "serviceaccounts")]
        cm_rt = self.types[("", "v1", "configmaps")]
        seeds: list[tuple[_resources.ResourceType, Obj]] = [
            (
                sa_rt,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name},
                },
            ),
            (
                cm_rt,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "namespace": name,
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."  # noqa: E501
                        },
                    },
                    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nloopback\n-----END CERTIFICATE-----\n"},
                },
            ),
        ]
        for rt, body in seeds:
            if self.lookup(rt, name, body["metadata"]["name"]) is None:
                manager = "kube-controller-manager"
                self._write(
                    rt, body, None, status_write=False, manager=manager, operation="Update", admit=None
                )

    def seed(self, body: Obj, *, manager: str = "loopback") -> Obj:
        """Create an object as the server itself (bootstrap RBAC, system namespaces)."""
        rt = self.type_for_kind(body["apiVersion"], body["kind"])
        if rt is None:
            raise ValueError(f"unknown kind {body['apiVersion']} {body['kind']}")
        namespace = body.get("metadata", {}).get("namespace", "")
        existing = self.lookup(rt, namespace, body["metadata"]["name"])
        if existing is not None:
            return existing
        return self.create(rt, namespace, _patches.clone(body), manager=manager)


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_volatile(obj: Mapping[str, Any]) -> Any:
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta["managedFields"] = [
        {k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []
    ]
    out = dict(obj)
    out["metadata"] = meta
    out.pop("apiVersion", None)
    return out


def _crd_update_errors(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[_validation.FieldError]:
    errors = []
    for field in ("group", "scope"):
        if new["spec"].get(field) != old["spec"].get(field):
            errors.append(_validation.invalid(f"spec.{field}", new["spec"].get(field), "field is immutable"))
    if new["spec"]["names"].get("plural") != old["spec"]["names"].get("plural"):
        errors.append(
            _validation.invalid("spec.names.plural", new["spec"]["names"].get("plural"), "field is immutable")
        )
    return errors


def _namespace_conditions(remaining: Mapping[str, int], finalizers: Mapping[str, int]) -> list[Obj]:
    stamp = now()

    def cond(kind: str, status: bool, reason: str, message: str) -> Obj:
        out: Obj = {
            "type": kind,
            "status": "True" if status else "False",
            "lastTransitionTime": stamp,
            "reason": reason,
        }
        if message:
            out["message"] = message
        return out

    content = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
    fins = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
    return [
        cond(
            "NamespaceDeletionDiscoveryFailure",
            False,
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            False,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        cond(
            "NamespaceDeletionContentFailure",
            False,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        cond(
            "NamespaceContentRemaining",
            bool(remaining),
            "SomeResourcesRemain" if remaining else "ContentRemoved",
            f"Some resources are remaining: {content}" if remaining else "All content successfully removed",
        ),
        cond(
            "NamespaceFinalizersRemaining",
            bool(finalizers),
            "SomeFinalizersRemain" if finalizers else "ContentHasNoFinalizers",
            f"Some content in the namespace has finalizers remaining: {fins}"
            if finalizers
            else "All content-preserving finalizers finished",
        ),
    ]


def _schema_strategy(schema: Mapping[str, Any]) -> _patches.Strategy:
    """A merge strategy from a CRD schema: `x-kubernetes-list-type: map` lists merge by their key."""
    out: dict[str, Any] = {}
    for key, child in (schema.get("properties") or {}).items():
        if child.get("type") == "array":
            items = child.get("items") or {}
            if child.get("x-kubernetes-list-type") == "map" and child.get("x-kubernetes-list-map-keys"):
                out[key] = ("key", child["x-kubernetes-list-map-keys"][0], _schema_strategy(items))
            elif child.get("x-kubernetes-list-type") == "set":
                out[key] = ("set",)
        elif child.get("type") == "object" and child.get("properties"):
            out[key] = _schema_strategy(child)
    out.setdefault("metadata", _patches.METADATA)
    return out

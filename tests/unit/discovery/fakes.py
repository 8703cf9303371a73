"""An in-memory stand-in for `discovery.kube.Api`: just the verbs discovery's writer and controller use.

It keeps the semantics discovery relies on (resourceVersion conflicts on PUT, AlreadyExists on POST, uid
preconditions and finalizers on DELETE, the status subresource) and records every call, so unit tests can
count writes. Not a Kubernetes API; the integration tests use the loopback API for that.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from discovery import kube

Key = tuple[str, str, str]


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.failures: dict[tuple[str, str], kube.ApiError] = {}
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)

    # -- test helpers -------------------------------------------------------------------------------

    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store `body` as the server would (uid, resourceVersion, generation), bypassing the verbs."""
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("generation", 1)
        self.objects[(plural, meta.get("namespace", ""), meta["name"])] = body
        return copy.deepcopy(body)

    def items(self, plural: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for (kind, _, _), body in sorted(self.objects.items()) if kind == plural]

    def writes(self) -> list[tuple[str, str, str, str]]:
        return [call for call in self.calls if call[0] != "get"]

    def _fail(self, verb: str, plural: str) -> None:
        error = self.failures.pop((verb, plural), None)
        if error is not None:
            raise error

    # -- the verbs ----------------------------------------------------------------------------------

    async def get_or_none(self, res: kube.Resource, name: str, *, namespace: str | None = None) -> Any:
        self.calls.append(("get", res.plural, namespace or "", name))
        found = self.objects.get((res.plural, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    async def create(self, res: kube.Resource, body: dict[str, Any], *, namespace: str | None = None) -> Any:
        meta = body["metadata"]
        self.calls.append(("create", res.plural, namespace or "", meta["name"]))
        self._fail("create", res.plural)
        key = (res.plural, namespace or "", meta["name"])
        if key in self.objects:
            raise kube.ApiError(409, {"reason": "AlreadyExists", "message": f"{meta['name']} exists"})
        return self.put(res.plural, body)

    async def replace(self, res: kube.Resource, body: dict[str, Any], *, subresource: str = "") -> Any:
        meta = body["metadata"]
        self.calls.append(("update", res.plural, meta.get("namespace", ""), meta["name"]))
        self._fail("update", res.plural)
        key = (res.plural, meta.get("namespace", ""), meta["name"])
        stored = self.objects.get(key)
        if stored is None:
            raise kube.ApiError(404, {"reason": "NotFound"})
        if meta.get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise kube.ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})
        body = copy.deepcopy(body)
        body["metadata"]["uid"] = stored["metadata"]["uid"]
        if stored["metadata"].get("deletionTimestamp"):
            body["metadata"]["deletionTimestamp"] = stored["metadata"]["deletionTimestamp"]
            if not body["metadata"].get("finalizers"):
                del self.objects[key]
                return body
        return self.put(res.plural, body)

    async def patch(
        self,
        res: kube.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str = "",
        **_: Any,
    ) -> Any:
        self.calls.append(
            ("patch" + (f"/{subresource}" if subresource else ""), res.plural, namespace or "", name)
        )
        self._fail("patch", res.plural)
        key = (res.plural, namespace or "", name)
        stored = self.objects.get(key)
        if stored is None:
            raise kube.ApiError(404, {"reason": "NotFound"})
        merged = _merge(copy.deepcopy(stored), patch)
        return self.put(res.plural, merged)

    async def delete(
        self, res: kube.Resource, name: str, *, namespace: str | None = None, uid: str | None = None, **_: Any
    ) -> Any:
        self.calls.append(("delete", res.plural, namespace or "", name))
        self._fail("delete", res.plural)
        key = (res.plural, namespace or "", name)
        stored = self.objects.get(key)
        if stored is None:
            return None
        if uid and stored["metadata"]["uid"] != uid:
            raise kube.ApiError(409, {"reason": "Conflict", "message": "uid precondition failed"})
        if stored["metadata"].get("finalizers"):
            stored["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            return self.put(res.plural, stored)
        del self.objects[key]
        return {"kind": "Status", "status": "Success"}


def _merge(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target

"""Simulated workload controllers for the loopback API (it runs no kubelet and no controllers).

An ordinary API client with its own token that plays two parts a real cluster plays:
- the Deployment controller and kubelet: a Deployment labelled `toolhive=true` gets a status saying all its
  replicas are ready (observedGeneration, replicas, readyReplicas, availableReplicas, Available condition);
- the ToolHive proxy runner: for each such Deployment it creates the backend StatefulSet `<name>` labelled
  `toolhive-name=<name>` (without an ownerReference, as the runner does), which the operator then adopts.

Used by the demo and by tests that need `phase: Ready`; never against a real cluster, where the real
controllers do this. It writes only Deployment status and StatefulSets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from discovery import informer, kube

DEPLOYMENTS: Final = kube.Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS: Final = kube.Resource("apps", "v1", "statefulsets", "StatefulSet")
RUNNER_FIELD_MANAGER: Final = "toolhive-container-manager"  # what ToolHive's runner uses

log = logging.getLogger(__name__)


class WorkloadSimulator:
    def __init__(self, api: kube.Api, *, create_statefulsets: bool = True) -> None:
        self.api = api
        self.create_statefulsets = create_statefulsets
        self._pending: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.informer = informer.Informer(
            api, DEPLOYMENTS, label_selector="toolhive=true", handler=self._on_event
        )

    def _on_event(self, event: informer.EventType, obj: kube.Body) -> None:
        if event != "DELETED":
            meta = obj["metadata"]
            self._pending.put_nowait((meta["namespace"], meta["name"]))

    async def run(self) -> None:
        watcher = asyncio.create_task(self.informer.run(), name="simulator watch")
        try:
            while True:
                namespace, name = await self._pending.get()
                deployment = self.informer.get(name, namespace=namespace)
                if deployment is None:
                    continue
                try:
                    await self._settle(deployment)
                except kube.ApiError as error:
                    if error.status not in (404, 409):
                        log.warning("simulator could not settle %s/%s: %s", namespace, name, error)
                    self._pending.put_nowait((namespace, name))
                    await asyncio.sleep(0.05)
        finally:
            watcher.cancel()

    async def _settle(self, deployment: kube.Body) -> None:
        meta = deployment["metadata"]
        if meta.get("deletionTimestamp"):
            return
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        wanted = ready_status(generation=int(meta.get("generation") or 1), replicas=replicas)
        current = deployment.get("status") or {}
        if any(current.get(key) != value for key, value in wanted.items() if key != "conditions"):
            await self.api.patch(
                DEPLOYMENTS,
                meta["name"],
                {"status": wanted},
                namespace=meta["namespace"],
                subresource="status",
            )
        if self.create_statefulsets:
            await self._ensure_statefulset(meta["namespace"], meta["name"])

    async def _ensure_statefulset(self, namespace: str, name: str) -> None:
        if await self.api.get_or_none(STATEFULSETS, name, namespace=namespace) is not None:
            return
        labels = {"app": name, "toolhive": "true", "toolhive-name": name}
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "serviceName": f"mcp-{name}-headless",
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "mcp", "image": "simulated/mcp-server"}]},
                },
            },
        }
        await self.api.apply(STATEFULSETS, body, field_manager=RUNNER_FIELD_MANAGER)


def ready_status(*, generation: int, replicas: int) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "simulated by the loopback workload simulator",
            }
        ],
    }

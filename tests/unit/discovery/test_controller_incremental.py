"""The running controller plans only what changed: a label change is one pass over one namespace, the echoes
of discovery's own writes wake nothing, a spec change re-plans everything. Against a loopback API (RBAC off)
with the real informers; each scenario waits on what it can observe (the API, the controller's counters).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from discovery import config as discovery_config
from discovery import constants, controller, kube
from toolhive.testing import LoopbackApi
from toolhive.testing import crds as testing_crds

LABEL = "example.com/enabled"
RESOURCE = discovery_config.discovery_resource("toolhive.stacklok.dev", "v1alpha1")
CONFIG = discovery_config.Config(
    resource=RESOURCE,
    cluster_role="toolhive-operator-manager-role",
    subject_name="toolhive-operator",
    subject_namespace="toolhive-system",
    grace_seconds=300,
)
EXISTING = 40
ONBOARDINGS = 15
REVOCATIONS = 5


async def poll(check: Callable[[], Awaitable[bool] | bool], *, what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = check()
        if answer if isinstance(answer, bool) else await answer:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def install(api: kube.Api) -> None:
    await testing_crds.create_all(api)
    body = {
        "apiVersion": RESOURCE.api_version,
        "kind": RESOURCE.kind,
        "metadata": {"name": CONFIG.name},
        "spec": {"selectors": [{"matchLabels": {LABEL: "true"}}]},
    }

    async def created() -> bool:
        try:
            await api.create(RESOURCE, body)
        except kube.ApiError:  # a new CRD is served once established
            return False
        return True

    await poll(created, what="the NamespaceDiscovery object")


async def status(api: kube.Api) -> dict[str, Any]:
    return dict((await api.get(RESOURCE, CONFIG.name)).get("status") or {})


async def label(api: kube.Api, name: str, value: str | None) -> None:
    await api.patch(kube.NAMESPACES, name, {"metadata": {"labels": {LABEL: value}}})


def test_label_changes_replan_one_namespace_each_and_own_echoes_wake_no_pass(tmp_path: Path) -> None:
    async def scenario(api: kube.Api) -> dict[str, collections.Counter[str]]:
        await install(api)
        for i in range(EXISTING + ONBOARDINGS):
            labels = {LABEL: "true"} if i < EXISTING else {}
            body = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"ns-{i}", "labels": labels},
            }
            await api.create(kube.NAMESPACES, body)
        found = controller.Controller(controller.Context(api=api, config=CONFIG))
        stop = asyncio.Event()
        running = asyncio.create_task(found.run(stop))
        counted: dict[str, collections.Counter[str]] = {}

        def since(before: collections.Counter[str]) -> collections.Counter[str]:
            delta = collections.Counter(found.stats)
            delta.subtract(before)
            return delta

        async def members(count: int) -> bool:
            return (await status(api)).get("memberCount") == count

        async def grant(namespace: str) -> kube.Body | None:
            return await api.get_or_none(kube.ROLEBINDINGS, CONFIG.rolebinding_name, namespace=namespace)

        async def draining(namespace: str) -> bool:
            binding = await grant(namespace) or {}
            annotations = binding.get("metadata", {}).get("annotations") or {}
            return constants.DRAINING_ANNOTATION in annotations

        try:
            await poll(lambda: members(EXISTING), what="the existing members")
            before = collections.Counter(found.stats)
            for i in range(EXISTING, EXISTING + ONBOARDINGS):
                await label(api, f"ns-{i}", "true")
                await poll(lambda i=i: members(i + 1), what=f"ns-{i} a member")
            counted["onboarded"] = since(before)
            before = collections.Counter(found.stats)
            for i in range(EXISTING, EXISTING + REVOCATIONS):
                namespace = f"ns-{i}"
                await label(api, namespace, None)
                await poll(lambda namespace=namespace: draining(namespace), what=f"{namespace} draining")
                released = {"metadata": {"annotations": {constants.RELEASED_ANNOTATION: "true"}}}
                await api.patch(kube.ROLEBINDINGS, CONFIG.rolebinding_name, released, namespace=namespace)
                await poll(lambda namespace=namespace: _none(grant(namespace)), what=f"{namespace} revoked")
            counted["revoked"] = since(before)
            left = EXISTING + ONBOARDINGS - REVOCATIONS
            await api.patch(RESOURCE, CONFIG.name, {"spec": {"denyNamespaces": ["ns-0"]}})
            await poll(lambda: draining("ns-0"), what="ns-0 denied by the new spec")
            await poll(lambda: members(left - 1), what="membership after the spec change")
            counted["total"] = collections.Counter(found.stats)
            return counted
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=10)

    async def main() -> dict[str, collections.Counter[str]]:
        with LoopbackApi(rbac=False) as loopback:
            kubeconfig = loopback.write_kubeconfig(tmp_path / "kubeconfig")
            api = await kube.Api.connect(kubeconfig=str(kubeconfig))
            try:
                return await scenario(api)
            finally:
                await api.close()

    counted = asyncio.run(main())
    onboarded, revoked = counted["onboarded"], counted["revoked"]
    # One pass per label change; each echo of a grant or status write (three per onboarding) would add one.
    assert onboarded["passes"] <= ONBOARDINGS + 2, onboarded
    # Each pass plans its one namespace, then once more to confirm the grant it wrote.
    assert onboarded["namespaces planned"] <= 2 * onboarded["passes"], onboarded
    # Two passes per revocation (the label removed, then the release); the echoes of the draining mark, the
    # finalizer removal and the delete add none.
    assert revoked["passes"] <= 2 * REVOCATIONS + 2, revoked
    assert onboarded["full plans"] == revoked["full plans"] == 0
    assert counted["total"]["full plans"] == 2, "the first pass and the spec change"


async def _none(found: Awaitable[kube.Body | None]) -> bool:
    return await found is None


def test_a_periodic_full_resync_replans_everything(tmp_path: Path) -> None:
    async def main() -> int:
        with LoopbackApi(rbac=False) as loopback:
            kubeconfig = loopback.write_kubeconfig(tmp_path / "kubeconfig")
            api = await kube.Api.connect(kubeconfig=str(kubeconfig))
            try:
                await install(api)
                context = controller.Context(api=api, config=CONFIG, full_resync=timedelta(seconds=0.2))
                found = controller.Controller(context)
                stop = asyncio.Event()
                running = asyncio.create_task(found.run(stop))
                try:
                    await poll(lambda: found.stats["full plans"] >= 3, what="resyncs")
                finally:
                    stop.set()
                    await asyncio.wait_for(running, timeout=10)
                return found.stats["passes"]
            finally:
                await api.close()

    assert asyncio.run(main()) >= 3

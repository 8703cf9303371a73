"""The loopback API's own cost: CPU milliseconds per request by verb, requests/s, with many open watches.

`python -m benchmarks.bench_loopback [--namespaces 100] [--per-namespace 10] [--watches 4000]`. The API
runs in its own process (RBAC on); a plain aiohttp client in this process sends the requests (16 at a
time) as a namespace-mode operator would: a user bound by one RoleBinding per namespace to a ClusterRole.
CPU is the API process's (utime + stime from /proc), divided by the requests of each phase (the least of
`--repeat` rounds where a phase can run again: other load on a shared machine only adds); a watch event
costs the difference between status patches with and without `--watches` open watches (spread over the
namespaces' MCPServers, Deployments and ConfigMaps, from the current resourceVersion; the table says how
many see each event). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from benchmarks import _harness as h
from toolhive import builders, rbac_rules
from toolhive.api import validation
from toolhive.testing import remote

USER = "bench-operator"
RBAC = "rbac.authorization.k8s.io"
ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "bench-operator"},
    "rules": [
        {
            "apiGroups": ["toolhive.stacklok.dev"],
            "resources": ["mcpservers", "mcpservers/status"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "list", "watch", "create", "patch"],
        },
        # The operator's own ClusterRole too: the operator pass applies Roles and RoleBindings, which the
        # escalation check allows only for rules the user holds.
        *(rule.as_manifest() for rule in rbac_rules.OPERATOR_CLUSTER_ROLE_RULES),
    ],
}
MCP = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/{ns}/mcpservers"
DEPLOY = "/apis/apps/v1/namespaces/{ns}/deployments"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"


def deployment(namespace: str, name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": f"{name}-proxy-runner",
                    "containers": [
                        {
                            "name": "toolhive",
                            "image": "ghcr.io/stacklok/toolhive/proxyrunner:latest",
                            "args": ["run", "--transport=streamable-http", "--proxy-port=8080", name],
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "env": [{"name": "XDG_CONFIG_HOME", "value": "/tmp"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
                        }
                    ],
                },
            },
        },
    }


class Driver:
    def __init__(self, api: remote.LoopbackProcess, session: aiohttp.ClientSession, token: str) -> None:
        self.api = api
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"}

    async def send(
        self, method: str, path: str, body: Any = None, *, ctype: str = "application/json", ok: int = 299
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers, **({"Content-Type": ctype} if data is not None else {}))
        async with self.session.request(method, self.api.url + path, data=data, headers=headers) as response:
            payload = await response.read()
            if response.status > ok:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
            return json.loads(payload) if payload else None


Call = tuple[str, str, Any, str]  # method, path, body, content type


async def phase(
    api: remote.LoopbackProcess,
    driver: Driver,
    name: str,
    calls: Sequence[Call] | Callable[[int], Sequence[Call]],
    rows: list[Any],
    *,
    repeat: int = 1,
) -> None:
    """Send the calls 16 at a time, `repeat` times (`calls(round)` gives each round's); one row with the
    least API CPU per request and the most requests/s of the rounds (the least disturbed by other load)."""
    gate = asyncio.Semaphore(16)

    async def one(call: Call) -> None:
        method, path, body, ctype = call
        async with gate:
            await driver.send(method, path, body, ctype=ctype)

    best_cpu, best_rate, count = float("inf"), 0.0, 0
    for round_ in range(repeat):
        batch = calls(round_) if callable(calls) else calls
        cpu, begin = h.cpu_seconds(api.pid), time.monotonic()
        await asyncio.gather(*(one(c) for c in batch))
        elapsed, used = time.monotonic() - begin, h.cpu_seconds(api.pid) - cpu
        count = len(batch)
        best_cpu, best_rate = min(best_cpu, used / count), max(best_rate, count / elapsed)
        print(f"  .. {name}: {count} in {elapsed:.1f}s, API CPU {used:.2f}s", flush=True)
    rows.append((name, count, f"{best_cpu * 1000:.2f}", f"{best_rate:.0f}"))


def mcpserver(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:1.0", "transport": "streamable-http"},
    }


async def measure(
    namespaces: int, per_namespace: int, watches: int, *, repeat: int = 3, fanout: int = 1000
) -> str:
    rows: list[Any] = []
    names = [f"lb-{i}" for i in range(namespaces)]
    json_type, apply_type, merge_type = (
        "application/json",
        "application/apply-patch+yaml",
        "application/merge-patch+json",
    )
    with remote.LoopbackProcess(rbac=True, history=200_000, bookmark_interval=30.0) as api:
        token = api.add_user(USER)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            admin = Driver(api, session, api.admin_token)
            user = Driver(api, session, token)
            await _install_crd(admin)
            await admin.send("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", ROLE)
            for ns in names:
                await admin.send("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
                binding = {
                    "metadata": {"name": "bench-operator", "namespace": ns},
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "bench-operator"},
                    "subjects": [{"kind": "User", "apiGroup": RBAC, "name": USER}],
                }
                await admin.send("POST", f"/apis/{RBAC}/v1/namespaces/{ns}/rolebindings", binding)
            servers = [(ns, f"s{i}") for ns in names for i in range(per_namespace)]
            apply_query = "?fieldManager=bench&force=true"
            creates = [("POST", MCP.format(ns=ns), mcpserver(ns, n), json_type) for ns, n in servers]
            await phase(api, user, "create (MCPServer, JSON POST)", creates, rows)
            applies = [
                ("PATCH", f"{DEPLOY.format(ns=ns)}/{n}{apply_query}", deployment(ns, n), apply_type)
                for ns, n in servers
            ]
            await phase(api, user, "apply that creates (Deployment)", applies, rows)
            await phase(api, user, "apply, no change (Deployment)", applies, rows, repeat=repeat)
            gets = [("GET", f"{MCP.format(ns=ns)}/{n}", None, json_type) for ns, n in servers]
            await phase(api, user, "get (MCPServer)", gets, rows, repeat=repeat)
            lists = [("GET", MCP.format(ns=ns), None, json_type) for ns in names]
            lists *= max(1, per_namespace // 2)
            listing = f"list (MCPServers of a namespace, {per_namespace} items)"
            await phase(api, user, listing, lists, rows, repeat=repeat)

            def status_patches(round_: int) -> list[Call]:
                body = {"status": {"phase": "Pending", "message": f"round {round_}"}}
                return [("PATCH", f"{MCP.format(ns=ns)}/{n}/status", body, merge_type) for ns, n in servers]

            await phase(api, user, "status merge patch, no watches", status_patches, rows, repeat=repeat)
            await _operator_pass(admin, user, names, per_namespace, rows)
            cpu = h.cpu_seconds(api.pid)
            streams, per_event = await _open_watches(user, names, watches)
            used = h.cpu_seconds(api.pid) - cpu
            rows.append(("watch (open, idle)", watches, f"{used / max(watches, 1) * 1000:.2f}", ""))
            await asyncio.sleep(1.0)
            watched_name = f"status merge patch, {watches} watches open"
            await phase(api, user, watched_name, lambda r: status_patches(r + repeat), rows, repeat=repeat)
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            # Fan-out alone: `fanout` watches of one namespace's MCPServers see every status patch there.
            streams, _ = await _open_watches(user, names[:1], fanout, kinds=(MCP,))
            await asyncio.sleep(1.0)
            here = [n for ns, n in servers if ns == names[0]]

            def local_patches(round_: int) -> list[Call]:
                return [
                    ("PATCH", f"{MCP.format(ns=names[0])}/{n}/status", body, merge_type)
                    for r in range(20)
                    for n in here
                    for body in [{"status": {"phase": "Pending", "message": f"fan-out {round_} {r}"}}]
                ]

            fanned = f"status merge patch, {fanout} watchers see it"
            await phase(api, user, fanned, local_patches, rows, repeat=repeat)
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
    base = next(float(r[2]) for r in rows if r[0] == "status merge patch, no watches")
    watched = next(float(r[2]) for r in rows if r[0] == watched_name)
    rows.append(
        (f"watch event to {per_event:.0f} watchers (the difference above)", "", f"{watched - base:.2f}", "")
    )
    spread = next(float(r[2]) for r in rows if r[0] == fanned)
    per_watcher = (spread - base) / fanout * 1000
    rows.append(("watch event, per watcher it is sent to (µs)", "", f"{per_watcher:.1f} µs", ""))
    load = os.getloadavg()[0]
    headers = ("phase", "requests", "API CPU ms/request", "requests/s")
    return h.table(headers, rows) + f"\n\n(load average {load:.1f})"


async def _operator_pass(
    admin: Driver, user: Driver, names: Sequence[str], per_namespace: int, rows: list[Any]
) -> None:
    """A first reconcile of fresh MCPServers, as the operator sends it: the finalizer (JSON patch guarded
    by resourceVersion), the applies of every child `builders.build_all` gives (one phase per kind, in the
    reconciler's wave order: the RoleBinding after its Role), the status (merge patch) and one Event."""
    gate = asyncio.Semaphore(16)
    servers = [(ns, f"op{i}") for ns in names for i in range(per_namespace)]

    async def create(ns: str, name: str) -> None:
        async with gate:
            await admin.send("POST", MCP.format(ns=ns), mcpserver(ns, name))

    await asyncio.gather(*(create(ns, n) for ns, n in servers))
    bodies = [
        item
        for ns in names
        for item in (await admin.send("GET", MCP.format(ns=ns)))["items"]
        if item["metadata"]["name"].startswith("op")
    ]
    json_patch, apply_type = "application/json-patch+json", "application/apply-patch+yaml"
    finalizers = [
        (
            "PATCH",
            f"{MCP.format(ns=b['metadata']['namespace'])}/{b['metadata']['name']}",
            [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": b["metadata"]["resourceVersion"],
                },
                {
                    "op": "add",
                    "path": "/metadata/finalizers",
                    "value": ["mcpserver.toolhive.stacklok.dev/finalizer"],
                },
            ],
            json_patch,
        )
        for b in bodies
    ]
    await phase(user.api, user, "operator: finalizer (JSON patch)", finalizers, rows)
    config = builders.BuildConfig()
    manifests: list[dict[str, Any]] = []
    for body in bodies:
        server = validation.check(body).server
        assert server is not None
        manifests.extend(builders.build_all(server, config=config))
    query = "?fieldManager=toolhive-operator&force=true"
    for kind in builders.KIND_RANK:
        calls = [
            ("PATCH", f"{_collection(m)}/{m['metadata']['name']}{query}", m, apply_type)
            for m in manifests
            if m["kind"] == kind
        ]
        await phase(user.api, user, f"operator: apply that creates ({kind})", calls, rows)
    status = {"status": {"phase": "Pending", "message": "Deployment created", "url": "http://x:8080"}}
    statuses = [
        ("PATCH", f"{MCP.format(ns=ns)}/{n}/status", status, "application/merge-patch+json")
        for ns, n in servers
    ]
    await phase(user.api, user, "operator: status (merge patch)", statuses, rows)
    events = [
        (
            "POST",
            f"/api/v1/namespaces/{ns}/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{n}.{i:016x}", "namespace": ns},
                "involvedObject": {
                    "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                    "kind": "MCPServer",
                    "name": n,
                    "namespace": ns,
                },
                "type": "Normal",
                "reason": "Created",
                "message": f"created the children of {n}",
                "source": {"component": "toolhive-operator"},
                "firstTimestamp": "2026-01-01T00:00:00Z",
                "lastTimestamp": "2026-01-01T00:00:00Z",
                "count": 1,
            },
            "application/json",
        )
        for i, (ns, n) in enumerate(servers)
    ]
    await phase(user.api, user, "operator: Event (JSON POST)", events, rows)


def _collection(manifest: dict[str, Any]) -> str:
    group, _, version = manifest["apiVersion"].rpartition("/")
    plural = {
        "ServiceAccount": "serviceaccounts",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
    }[manifest["kind"]]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{manifest['metadata']['namespace']}/{plural}"


async def _open_watches(
    user: Driver, names: Sequence[str], count: int, *, kinds: Sequence[str] = (MCP, DEPLOY, CONFIGMAPS)
) -> tuple[list[asyncio.Task[None]], float]:
    """`count` watches over the namespaces' `kinds` (MCPServers, Deployments, ConfigMaps), from the current
    resourceVersion (as an informer after its list); returns them and how many see each MCPServer event."""
    paths = [kind.format(ns=ns) for kind in kinds for ns in names]
    paths = (paths * (count // max(len(paths), 1) + 1))[:count]
    version = (await user.send("GET", MCP.format(ns=names[0])))["metadata"]["resourceVersion"]

    async def stream(path: str) -> None:
        async with user.session.get(
            user.api.url + path,
            params={"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"},
            headers=user.headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            async for _ in response.content.iter_any():
                pass

    tasks = [asyncio.create_task(stream(p)) for p in paths]
    deadline = time.monotonic() + 60
    already = sum(user.api.open_watches().values())
    while sum(user.api.open_watches().values()) < already + count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    per_event = sum(1 for p in paths if p == MCP.format(ns=names[0]))
    return tasks, per_event


async def _install_crd(admin: Driver) -> None:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent / "crds"
    for path in sorted(root.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                await admin.send("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
    await asyncio.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--per-namespace", type=int, default=10)
    parser.add_argument("--watches", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the phases that can be repeated")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.namespaces, args.per_namespace, args.watches, repeat=args.repeat))
    print(result, flush=True)


if __name__ == "__main__":
    main()

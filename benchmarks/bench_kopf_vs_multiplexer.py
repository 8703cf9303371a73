"""kopf's per-namespace streams vs the operator's multiplexer: connections, memory, time to sync.

Both engines serve the same N namespaces (a static list) and watch the same four kinds per namespace
(MCPServers, Deployments, Services, StatefulSets), each against its own fresh loopback API (RBAC off:
this measures the engines, not authorization). kopf runs handler-free-ish `on.event` handlers in
`kopf.run(standalone=True, namespaces=[...])`; the operator is `toolhive-operator run` in namespace scope.
Each runs as a subprocess so its RSS is its own. Reported: open watch streams held by the API server,
RSS once every stream is open, seconds from start until then, and list/watch requests made.

    python -m benchmarks.bench_kopf_vs_multiplexer [--sizes 10,100,300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from benchmarks import _harness
from toolhive.testing import LoopbackApi

REPO = Path(__file__).parents[1]
KINDS = ("mcpservers", "deployments", "services", "statefulsets")

KOPF_MODULE = textwrap.dedent(
    """
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.posting.enabled = False
        settings.scanning.disabled = True  # exact namespace names: no namespace observer needed

    @kopf.on.event("toolhive.stacklok.dev", "v1beta1", "mcpservers")
    def mcpservers(**_): pass

    @kopf.on.event("apps", "v1", "deployments", labels={"toolhive": "true"})
    def deployments(**_): pass

    @kopf.on.event("", "v1", "services", labels={"toolhive": "true"})
    def services(**_): pass

    @kopf.on.event("apps", "v1", "statefulsets", labels={"toolhive": "true"})
    def statefulsets(**_): pass
    """
)


def open_watches(api: LoopbackApi) -> int:
    def count(store: Any) -> int:
        return sum(1 for watcher in store.open_watchers() if watcher.rt.plural in KINDS)

    return int(api.call(count))


def prepare(api: LoopbackApi, workdir: Path, size: int) -> tuple[Path, list[str]]:
    kubeconfig = api.write_kubeconfig(workdir / "admin.kubeconfig")
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    with client:
        crds = kubernetes.client.ApiextensionsV1Api(client)
        for path in sorted((REPO / "crds").glob("*.yaml")):
            crds.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        core = kubernetes.client.CoreV1Api(client)
        names = [f"bench-{n:04d}" for n in range(size)]
        for name in names:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return kubeconfig, names


def launch(engine: str, *, kubeconfig: Path, namespaces: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    if engine == "kopf":
        module = workdir / "kopf_bench_handlers.py"
        module.write_text(KOPF_MODULE)
        code = (
            "import asyncio, kopf, runpy, sys; "
            f"runpy.run_path({str(module)!r}); "
            f"kopf.run(standalone=True, namespaces={namespaces!r})"
        )
        command = [sys.executable, "-c", code]
    else:
        env.update(
            {
                "TOOLHIVE_RBAC__SCOPE": "namespace",
                "WATCH_NAMESPACE": ",".join(namespaces),
                "TOOLHIVE_OBSERVABILITY__HEALTH_PORT": "0",
                "TOOLHIVE_OBSERVABILITY__METRICS_PORT": "0",
                "TOOLHIVE_OBSERVABILITY__LOG_LEVEL": "WARNING",
            }
        )
        command = [sys.executable, "-m", "toolhive.cli", "run"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(engine: str, size: int, *, timeout: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{engine}-"))
    with LoopbackApi(rbac=False, bookmark_interval=60.0) as api:
        kubeconfig, namespaces = prepare(api, workdir, size)
        api.requests.reset()
        begin = time.monotonic()
        process = launch(engine, kubeconfig=kubeconfig, namespaces=namespaces, workdir=workdir)
        expected = len(KINDS) * size
        try:
            while open_watches(api) < expected:
                if process.poll() is not None:
                    error = (process.stderr.read() if process.stderr else b"").decode()[-2000:]
                    raise RuntimeError(f"{engine} exited early:\n{error}")
                if time.monotonic() - begin > timeout:
                    raise TimeoutError(f"{engine}: {open_watches(api)}/{expected} watches after {timeout}s")
                time.sleep(0.05)
            synced = time.monotonic() - begin
            time.sleep(2.0)  # let both settle before reading memory
            return {
                "watches": open_watches(api),
                "rss": _harness.rss_mib(process.pid),
                "synced": synced,
                "lists": api.requests.count("list"),
                "watch requests": api.requests.count("watch"),
            }
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,300", help="numbers of served namespaces")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every stream")
    args = parser.parse_args(argv)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        results = {engine: measure(engine, size, timeout=args.timeout) for engine in ("kopf", "multiplexer")}
        kopf, ours = results["kopf"], results["multiplexer"]
        rows.append(
            [
                size,
                f"{kopf['watches']} / {ours['watches']}",
                f"{kopf['rss']:.0f} / {ours['rss']:.0f}",
                f"{ours['rss'] / kopf['rss']:.2f}",
                f"{kopf['synced']:.2f} / {ours['synced']:.2f}",
                f"{kopf['lists']} / {ours['lists']}",
            ]
        )
        print(f"  {size} namespaces measured", flush=True)
    print(
        _harness.table(
            [
                "namespaces",
                "watch streams kopf / ours",
                "RSS MiB kopf / ours",
                "RSS ratio",
                "all streams open (s) kopf / ours",
                "LISTs kopf / ours",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

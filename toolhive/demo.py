"""`toolhive-operator demo`: label-driven onboarding and revocation, played with timed output in ~10 seconds.

The loopback Kubernetes API (RBAC on) runs in a thread; the chart is rendered in discovery mode and applied;
discovery and the operator run in this process, each as its own ServiceAccount (TokenRequest tokens), with
the workload simulator standing in for the Deployment controller and an OTLP receiver collecting the trace.
`--cluster` plays the same story against the cluster in `KUBECONFIG` (`helm install`, no simulator, its
namespaces deleted afterwards). Called by the CLI and tests/e2e/test_demo.py; it never touches a cluster
unless `--cluster` is given, and never the user's helm configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

from discovery import kube
from toolhive import constants, logs, operator, resources, settings, telemetry

if TYPE_CHECKING:  # the testing package loads only when the demo runs
    from toolhive.testing import install as install_module
    from toolhive.testing import otlp as otlp_module

T = TypeVar("T")

LABEL: Final = "toolhive.stacklok.dev/enabled"
SERVICE_NAME: Final = "toolhive-demo"
SERVER_NAME: Final = "fetch"
TIMEOUT: Final = 30.0
VALUES: Final = {"operator": {"rbac": {"scope": "namespace", "discovery": {"enabled": True}}}}
# Short grace: if the operator never released a draining namespace the demo would show it, not hang.
GRACE_SECONDS: Final = 10.0


class DemoFailed(RuntimeError):
    """A step of the story did not happen in time; the message says which."""


@dataclasses.dataclass
class Narrator:
    """Timed, indented output: `step` lines carry the time since start, `detail` lines are indented."""

    out: TextIO
    start: float = dataclasses.field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def step(self, message: str) -> None:
        print(f"[{self.elapsed():6.2f}s] {message}", file=self.out, flush=True)

    def detail(self, message: str) -> None:
        print(f"          {message}", file=self.out, flush=True)

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", file=self.out, flush=True)


@dataclasses.dataclass
class Stage:
    """Where the story plays: admin API, namespace names, and what runs besides the operator."""

    admin: kube.Api
    team_a: str
    team_b: str
    simulated: bool


def main(
    *, keep: bool = False, cluster: bool = False, verbose: bool = False, out: TextIO | None = None
) -> int:
    """Play the demo; 0 when every step happened, 1 (with the reason printed) otherwise."""
    narrator = Narrator(out or sys.stdout)
    logs.configure_logging(level="INFO" if verbose else "ERROR", log_format="text", stream=sys.stderr)
    try:
        return asyncio.run(_main(narrator, keep=keep, cluster=cluster))
    except DemoFailed as failure:
        narrator.step(f"FAILED: {failure}")
        return 1


async def _main(narrator: Narrator, *, keep: bool, cluster: bool) -> int:
    from toolhive.testing import LoopbackApi, install, otlp

    workdir = Path(tempfile.mkdtemp(prefix="toolhive-demo-"))
    loopback: LoopbackApi | None = None
    if cluster:
        given = os.environ.get("KUBECONFIG")
        if not given:
            raise DemoFailed("--cluster needs KUBECONFIG naming the cluster's kubeconfig")
        admin_kubeconfig = Path(given.split(os.pathsep)[0]).expanduser()
        print("toolhive-operator demo: against the cluster in KUBECONFIG", file=narrator.out)
    else:
        print("toolhive-operator demo: on the loopback Kubernetes API (RBAC enforced)", file=narrator.out)
        loopback = LoopbackApi(rbac=True).start()
        admin_kubeconfig = loopback.write_kubeconfig(workdir / "admin.kubeconfig")
        narrator.step(f"loopback Kubernetes API listening on {loopback.url}")

    receiver = otlp.OtlpReceiver()
    provider = telemetry.configure(
        default_service_name=SERVICE_NAME,
        environ={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": SERVICE_NAME},
    )
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    apis: list[kube.Api] = []
    installation = None
    try:
        helm = await asyncio.to_thread(install.locate_helm, home=workdir / "helm-home")
        values = {
            "operator": {
                "rbac": {
                    **VALUES["operator"]["rbac"],
                    "discovery": {"enabled": True, "releaseGraceSeconds": GRACE_SECONDS},
                }
            }
        }
        installation = await asyncio.to_thread(
            install.install,
            values,
            admin_kubeconfig=admin_kubeconfig,
            workdir=workdir,
            use_helm_install=cluster,
            helm=helm,
        )
        how = "helm install" if cluster else "helm template --include-crds, server-side applied"
        counts: dict[str, int] = {}
        for doc in installation.documents:
            if install.runs_at_install(doc):  # not the uninstall hook
                counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
        narrator.step(f"chart installed in discovery mode ({how}):")
        narrator.detail(", ".join(f"{n} {kind}" for kind, n in counts.items()))
        if not cluster:
            narrator.detail("(the two Deployments are not applied: their processes run inside this demo)")
        identities = installation.identities
        narrator.step("ServiceAccount tokens from the TokenRequest API: " + ", ".join(sorted(identities)))

        admin = await kube.Api.connect(kubeconfig=str(admin_kubeconfig))
        apis.append(admin)
        ports = {"observability": {"metrics_port": 0, "health_port": 0}}
        operator_settings = settings.Settings(
            **install.settings_from_env(installation.env("toolhive-operator"), **ports)
        )
        discovery_settings = settings.Settings(
            **install.settings_from_env(installation.env("toolhive-discovery"), **ports)
        )
        tasks.append(
            asyncio.create_task(_run_discovery(discovery_settings, identities, stop, apis), name="discovery")
        )
        tasks.append(
            asyncio.create_task(
                operator.run(
                    operator_settings, kubeconfig=str(identities["toolhive-operator"].kubeconfig), stop=stop
                ),
                name="operator",
            )
        )
        started = [
            "discovery (as toolhive-system/toolhive-discovery)",
            "operator (as toolhive-system/toolhive-operator)",
        ]
        if loopback is not None:
            from toolhive.testing import workloads

            token = loopback.add_user("workload-simulator", ("system:masters",))
            sim_api = await kube.Api.connect(
                kubeconfig=str(loopback.write_kubeconfig(workdir / "simulator.kubeconfig", token=token))
            )
            apis.append(sim_api)
            tasks.append(asyncio.create_task(workloads.WorkloadSimulator(sim_api).run(), name="simulator"))
            started.append("workload simulator (plays the Deployment controller)")
        started.append(f"OTLP receiver on {receiver.endpoint}")
        narrator.step("started " + "; ".join(started))
        narrator.detail(
            "one interpreter holds one global tracer provider: "
            f"both processes export as service {SERVICE_NAME!r}"
        )

        prefix = "toolhive-demo-" if cluster else ""
        stage = Stage(
            admin=admin, team_a=f"{prefix}team-a", team_b=f"{prefix}team-b", simulated=loopback is not None
        )
        await _guard(tasks, _story(stage, narrator))
        if provider is not None:
            provider.force_flush()
        await _guard(tasks, _show_trace(stage, narrator, receiver))
        narrator.step("done: every step happened")
        if keep:
            await _keep(narrator, admin_kubeconfig, installation, stage, stop)
        elif cluster:
            await _cleanup_cluster(stage, narrator)
        return 0
    finally:
        stop.set()
        for task in tasks:
            if task.get_name() == "simulator":
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for api in apis:
            await api.close()
        if cluster and installation is not None and not keep:
            await asyncio.to_thread(
                install.uninstall, installation, admin_kubeconfig=admin_kubeconfig, workdir=workdir
            )
        telemetry.shutdown()
        receiver.close()
        if loopback is not None:
            loopback.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _run_discovery(
    config: settings.Settings,
    identities: Mapping[str, install_module.Identity],
    stop: asyncio.Event,
    apis: list[kube.Api],
) -> None:
    import discovery
    from toolhive import cli

    api = await kube.Api.connect(kubeconfig=str(identities["toolhive-discovery"].kubeconfig))
    apis.append(api)
    await discovery.run(cli.discovery_config(config), api=api, stop=stop)


async def _guard(tasks: list[asyncio.Task[Any]], story: Awaitable[T]) -> T:
    """Run a part of the story, but fail at once (with the cause) if a background process died."""
    main = asyncio.ensure_future(story)
    done, _ = await asyncio.wait([main, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if main not in done:
        main.cancel()
        dead = next(task for task in done)
        error = dead.exception()
        raise DemoFailed(f"{dead.get_name()} stopped: {error!r}")
    return main.result()


async def _story(stage: Stage, narrator: Narrator) -> None:
    admin, team_a, team_b = stage.admin, stage.team_a, stage.team_b

    narrator.section("1. two teams: only the labelled one is served")
    await admin.create(kube.NAMESPACES, _namespace(team_a, labelled=True))
    await admin.create(kube.NAMESPACES, _namespace(team_b, labelled=False))
    narrator.step(f"namespace {team_a} labelled {LABEL}=true; namespace {team_b} not labelled")
    for namespace in (team_a, team_b):
        await admin.create(resources.MCPSERVERS, _mcpserver(namespace), namespace=namespace)
    narrator.step(f"MCPServer {SERVER_NAME} applied in both namespaces")
    begin = time.monotonic()
    server = await _wait(
        lambda: _reconciled(admin, team_a, ready=stage.simulated), what=f"{team_a}/{SERVER_NAME} reconciled"
    )
    status = server.get("status") or {}
    narrator.step(
        f"{team_a}/{SERVER_NAME} reconciled in {_ms(begin)}: "
        f"phase {status.get('phase')}, url {status.get('url')}"
    )
    await _show_objects(stage, narrator)
    await _show_identities(stage, narrator)
    other = await admin.get(resources.MCPSERVERS, SERVER_NAME, namespace=team_b)
    deployment = await admin.get_or_none(resources.DEPLOYMENTS, SERVER_NAME, namespace=team_b)
    grant = await admin.get_or_none(resources.ROLEBINDINGS, "toolhive-operator", namespace=team_b)
    narrator.step(
        f"{team_b}/{SERVER_NAME}: status {other.get('status') or 'none'}, Deployment "
        f"{'exists' if deployment else 'none'}, operator RoleBinding {'exists' if grant else 'none'}"
    )
    if deployment is not None or other.get("status"):
        raise DemoFailed(f"{team_b} is not labelled but its MCPServer was reconciled")
    await _show_membership(stage, narrator)

    narrator.section(f"2. onboard {team_b}: kubectl label namespace {team_b} {LABEL}=true")
    begin = time.monotonic()
    await admin.patch(kube.NAMESPACES, team_b, {"metadata": {"labels": {LABEL: "true"}}})
    await _wait(
        lambda: admin.get_or_none(resources.ROLEBINDINGS, "toolhive-operator", namespace=team_b),
        what=f"RoleBinding in {team_b}",
        interval=0.002,
    )
    granted = _ms(begin)
    await _wait(
        lambda: admin.get_or_none(resources.DEPLOYMENTS, SERVER_NAME, namespace=team_b),
        what=f"Deployment in {team_b}",
        interval=0.002,
    )
    deployed = _ms(begin)
    server = await _wait(
        lambda: _reconciled(admin, team_b, ready=stage.simulated), what=f"{team_b}/{SERVER_NAME} reconciled"
    )
    narrator.step(
        f"{team_b} onboarded: RoleBinding after {granted}, Deployment after {deployed}, "
        f"phase {server['status'].get('phase')} after {_ms(begin)}"
    )
    await _show_membership(stage, narrator)

    narrator.section(f"3. revoke {team_a}: kubectl label namespace {team_a} {LABEL}-")
    begin = time.monotonic()
    await admin.patch(kube.NAMESPACES, team_a, {"metadata": {"labels": {LABEL: None}}})

    async def revoked() -> bool:
        return await admin.get_or_none(resources.ROLEBINDINGS, "toolhive-operator", namespace=team_a) is None

    await _wait(revoked, what=f"RoleBinding in {team_a} revoked", interval=0.002)
    narrator.step(
        f"RoleBinding in {team_a} gone after {_ms(begin)} (the operator released the namespace first)"
    )
    server = await admin.get(resources.MCPSERVERS, SERVER_NAME, namespace=team_a)
    finalizers = server["metadata"].get("finalizers") or []
    narrator.detail(f"finalizers left on {team_a}/{SERVER_NAME}: {finalizers or 'none'}")
    if constants.FINALIZER in finalizers:
        raise DemoFailed(f"{team_a}/{SERVER_NAME} kept the operator finalizer after revocation")
    begin = time.monotonic()
    await admin.delete(resources.MCPSERVERS, SERVER_NAME, namespace=team_a)

    async def deleted() -> bool:
        return await admin.get_or_none(resources.MCPSERVERS, SERVER_NAME, namespace=team_a) is None

    await _wait(deleted, what=f"{team_a}/{SERVER_NAME} deleted", interval=0.002)
    narrator.step(
        f"kubectl delete mcpserver {SERVER_NAME} -n {team_a}: gone after {_ms(begin)} (nothing stuck)"
    )
    await _show_membership(stage, narrator)


async def _show_objects(stage: Stage, narrator: Narrator) -> None:
    narrator.detail(
        f"objects the operator created in {stage.team_a} (ownerReference: MCPServer {SERVER_NAME}):"
    )
    for res in (
        resources.SERVICEACCOUNTS,
        resources.ROLES,
        resources.ROLEBINDINGS,
        resources.CONFIGMAPS,
        resources.DEPLOYMENTS,
        resources.SERVICES,
    ):
        items, _ = await stage.admin.list(res, namespace=stage.team_a)
        for item in items:
            owners = item["metadata"].get("ownerReferences") or []
            if any(owner.get("kind") == "MCPServer" for owner in owners):
                narrator.detail(f"  {res.kind:<15} {item['metadata']['name']}")


async def _show_identities(stage: Stage, narrator: Narrator) -> None:
    """The two ServiceAccounts per MCPServer and what each may do (Role rules; none for the server)."""
    admin, namespace = stage.admin, stage.team_a
    narrator.detail("two identities per MCPServer, never shared:")
    role = await admin.get(resources.ROLES, f"{SERVER_NAME}-proxy-runner", namespace=namespace)
    narrator.detail(
        f"  ServiceAccount {SERVER_NAME}-proxy-runner (proxy runner), Role {SERVER_NAME}-proxy-runner:"
    )
    for rule in role.get("rules") or []:
        groups = ",".join(g or "core" for g in rule.get("apiGroups") or [])
        narrator.detail(
            f"    {groups:<8} {','.join(rule.get('resources') or []):<32} {' '.join(rule.get('verbs') or [])}"
        )
    account = await admin.get(resources.SERVICEACCOUNTS, f"{SERVER_NAME}-sa", namespace=namespace)
    bindings, _ = await admin.list(resources.ROLEBINDINGS, namespace=namespace)
    bound = [
        b["metadata"]["name"]
        for b in bindings
        if any(s.get("name") == f"{SERVER_NAME}-sa" for s in b.get("subjects") or [])
    ]
    narrator.detail(
        f"  ServiceAccount {SERVER_NAME}-sa (the MCP server pod): RoleBindings {bound or 'none'}, "
        f"automountServiceAccountToken: {str(account.get('automountServiceAccountToken')).lower()}"
    )


async def _show_membership(stage: Stage, narrator: Narrator) -> None:
    nsd = await stage.admin.get_or_none(resources.NAMESPACEDISCOVERIES, "toolhive-operator")
    status = (nsd or {}).get("status") or {}
    ours = {stage.team_a, stage.team_b}
    shown = {
        key: [n for n in status.get(key) or [] if n in ours] for key in ("members", "pending", "draining")
    }
    narrator.detail(
        "kubectl get nsd toolhive-operator: "
        + ", ".join(f"{key} {value or '[]'}" for key, value in shown.items())
    )


async def _show_trace(stage: Stage, narrator: Narrator, receiver: otlp_module.OtlpReceiver) -> None:
    narrator.section(
        f"4. one trace: label on {stage.team_b} -> discovery decision -> grant -> reconcile -> Deployment"
    )

    def complete(spans: list[Any]) -> bool:
        return any(
            s.name == "discovery.decide" and s.attributes.get("k8s.namespace.name") == stage.team_b
            for s in spans
        ) and any(s.name == "toolhive.apply Deployment" for s in spans)

    await asyncio.to_thread(receiver.wait_for, complete, timeout=TIMEOUT)
    decisions = [
        s
        for s in receiver.find_spans("discovery.decide", attributes={"k8s.namespace.name": stage.team_b})
        if s.attributes.get("discovery.decision.member") is True
    ]
    if not decisions:
        raise DemoFailed(f"no discovery.decide span selecting {stage.team_b} arrived")
    tree = receiver.render_tree(
        decisions[-1].trace_id,
        follow_links=True,
        attributes=(
            "k8s.namespace.name",
            "discovery.decision.reason",
            "toolhive.reconcile.trigger",
            "toolhive.reconcile.outcome",
        ),
    )
    lines, hidden, quiet = _condense(tree.splitlines())
    for line in lines:
        narrator.detail(line)
    narrator.detail(
        f"({hidden} Kubernetes API call spans and {quiet} follow-up zero-write reconciles not shown)"
    )
    if not any("toolhive.apply Deployment" in line for line in lines):
        raise DemoFailed("the onboarding trace does not reach the Deployment apply")


def _condense(lines: list[str]) -> tuple[list[str], int, int]:
    """Drop API-call spans, and linked reconciles that changed nothing (their whole indented block)."""
    kept: list[str] = []
    api_calls = quiet = 0
    skip_deeper_than: int | None = None
    for index, line in enumerate(lines):
        depth = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if depth > skip_deeper_than:
                continue
            skip_deeper_than = None
        if "k8s.api" in line:
            api_calls += 1
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() == "<- link" and "outcome=unchanged" in following:
            quiet += 1
            skip_deeper_than = depth
            continue
        kept.append(line)
    return kept, api_calls, quiet


async def _keep(
    narrator: Narrator,
    admin_kubeconfig: Path,
    installation: install_module.Installation,
    stage: Stage,
    stop: asyncio.Event,
) -> None:
    narrator.section("--keep: the API, discovery and the operator keep running; Ctrl-C stops them")
    narrator.detail(f"export KUBECONFIG={admin_kubeconfig}")
    for name, identity in sorted(installation.identities.items()):
        narrator.detail(f"  as {name}: --kubeconfig {identity.kubeconfig}")
    narrator.detail("kubectl get nsd,mcpservers -A")
    narrator.detail(f"kubectl get rolebindings -n {stage.team_b}")
    narrator.detail(f"kubectl label namespace {stage.team_a} {LABEL}=true   # onboard it again")
    narrator.detail(
        f"kubectl auth can-i list mcpservers -n {stage.team_a} "
        f"--kubeconfig {installation.identities['toolhive-operator'].kubeconfig}"
    )
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, interrupted.set)
    await interrupted.wait()
    narrator.step("stopping")


async def _cleanup_cluster(stage: Stage, narrator: Narrator) -> None:
    """Delete the demo's namespaces while discovery and the operator still run, so both finalize."""
    for namespace in (stage.team_a, stage.team_b):
        await stage.admin.delete(kube.NAMESPACES, namespace)

    async def gone() -> bool:
        for namespace in (stage.team_a, stage.team_b):
            if await stage.admin.get_or_none(kube.NAMESPACES, namespace) is not None:
                return False
        return True

    try:
        await _wait(gone, what="demo namespaces deleted", interval=0.5, timeout=120)
        narrator.step(f"namespaces {stage.team_a} and {stage.team_b} deleted; uninstalling the release")
    except DemoFailed as failure:
        narrator.step(f"warning: {failure}; uninstalling the release anyway")


async def _reconciled(admin: kube.Api, namespace: str, *, ready: bool) -> kube.Body | None:
    server = await admin.get(resources.MCPSERVERS, SERVER_NAME, namespace=namespace)
    phase = (server.get("status") or {}).get("phase")
    if phase == "Ready" or (phase and not ready and phase != "Failed"):
        return server
    if phase == "Failed":
        raise DemoFailed(f"{namespace}/{SERVER_NAME} failed: {server['status'].get('message')}")
    return None


async def _wait(
    check: Callable[[], Awaitable[T | None]], *, what: str, interval: float = 0.01, timeout: float = TIMEOUT
) -> T:
    """Poll `check` until it returns something truthy; DemoFailed naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(interval)


def _ms(begin: float) -> str:
    return f"{(time.monotonic() - begin) * 1000:.0f} ms"


def _namespace(name: str, *, labelled: bool) -> kube.Body:
    labels = {LABEL: "true"} if labelled else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _mcpserver(namespace: str) -> kube.Body:
    return {
        "apiVersion": f"{constants.GROUP}/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": SERVER_NAME, "namespace": namespace},
        "spec": {
            "image": "ghcr.io/stackloklabs/gofetch/server:latest",
            "transport": "streamable-http",
            "proxyPort": 8080,
            "mcpPort": 8080,
        },
    }

"""The chaos soak: random operations, API faults and process kills against the installed chart, then quiesce.

`Soak` owns two replicas of discovery and two of the operator (subprocesses with their own tokens, leader
election on a short lease), the workload simulator (loopback only, in a thread) and a seeded random driver
that writes through the admin client. `run_chaos(seconds)` applies operations; `quiesce()` clears faults and
makes sure every replica runs; the test then polls the invariant checker. Used by tests/chaos/test_soak.py
only. Never signals a process it did not start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import kubernetes

from discovery import kube
from tests import cluster as cluster_mod
from toolhive.testing import install, processes, workloads

GROUP: Final = "toolhive.stacklok.dev"
VERSION: Final = "v1beta1"
LABEL: Final = "toolhive.stacklok.dev/enabled"
REPLICAS: Final = 2
LEASE_ENV: Final = {
    "TOOLHIVE_LEADER_ELECTION__ENABLED": "true",
    "TOOLHIVE_LEADER_ELECTION__LEASE_DURATION_SECONDS": "3",
    "TOOLHIVE_LEADER_ELECTION__RENEW_SECONDS": "0.5",
}
# Discovery mode with the chart's defaults (releaseGraceSeconds 30).
VALUES: Final = {"operator": {"rbac": {"scope": "namespace", "discovery": {"enabled": True}}}}
FAULT_STATUSES: Final = (409, 429, 500, 503)
FAULT_VERBS: Final = (None, "get", "list", "watch", "create", "update", "patch", "delete")
SERVER_NAMES: Final = ("alpha", "beta", "gamma")
# Longest both replicas of one kind stay down, and the least time between two kills of one kind (a
# SIGKILLed leader's lease takes 3 s to expire, then the standby needs up to 2 s to take it). Kills any
# denser keep the operator from leading for a whole releaseGraceSeconds, after which discovery revokes a
# leaving namespace's grant unreleased: a known limit (README, Reliability), reproduced on its own by
# test_operator_outage.py rather than by chance here.
MAX_OUTAGE: Final = 4.0
KILL_COOLDOWN: Final = 8.0
# A SIGTERMed replica must be gone well inside the chart's 30 s grace period (drain is at most 10 s).
TERM_DEADLINE: Final = 15.0


@dataclasses.dataclass
class Replica:
    deployment: str
    index: int
    process: processes.Process | None = None
    starts: int = 0
    expected_exit: bool = False  # we signalled it
    restart_at: float | None = None
    term_sent_at: float | None = None

    @property
    def pod_name(self) -> str:
        return f"{self.deployment}-{self.index}"


@dataclasses.dataclass
class Tally:
    """What the soak did (printed in the summary line)."""

    operations: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    kills: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    crashes: list[str] = dataclasses.field(default_factory=list)
    shutdowns: list[float] = dataclasses.field(default_factory=list)  # seconds from SIGTERM to exit

    def summary(self, *, seed: int, seconds: float, converged: float) -> str:
        return (
            f"soak seed={seed}: {sum(self.operations.values())} operations "
            f"({_fmt(self.operations)}), {sum(self.faults.values())} faults ({_fmt(self.faults)}), "
            f"{sum(v for k, v in self.kills.items() if k.startswith('sig'))} kills/terms "
            f"({_fmt(self.kills)}), chaos {seconds:.1f}s, "
            f"converged in {converged:.1f}s, slowest SIGTERM exit {max(self.shutdowns, default=0):.1f}s, "
            f"unexpected exits: {len(self.crashes)}"
        )


def _fmt(counter: collections.Counter[str]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(counter.items())) or "none"


class Soak:
    def __init__(
        self,
        cluster: cluster_mod.Cluster,
        installation: install.Installation,
        *,
        seed: int,
        logdir: Path,
        faults: bool,
    ) -> None:
        self.cluster = cluster
        self.installation = installation
        self.rng = random.Random(seed)
        self.logdir = logdir
        self.inject_faults = faults and cluster.loopback is not None
        self.tally = Tally()
        self.namespaces: list[str] = []
        self.created: list[str] = []  # every namespace the soak made, deleted ones too
        self.replicas = [
            Replica(deployment, index)
            for deployment in (install.DISCOVERY, install.OPERATOR)
            for index in range(REPLICAS)
        ]
        self._client: Any = None
        self._outage_until: float | None = None
        self._last_kill: dict[str, float] = {}
        self._simulator: threading.Thread | None = None
        self._simulator_stop: asyncio.Event | None = None
        self._simulator_loop: asyncio.AbstractEventLoop | None = None
        self.users = [
            f"system:serviceaccount:{identity.namespace}:{identity.name}"
            for identity in installation.identities.values()
        ]

    # -- lifecycle ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Soak]:
        with self.cluster.api_client() as client:
            self._client = client
            try:
                if self.cluster.loopback is not None:
                    self._start_simulator()
                for replica in self.replicas:
                    self._start(replica)
                yield self
            finally:
                try:
                    self.quiesce()
                    self._delete_namespaces()
                finally:
                    for replica in self.replicas:
                        if replica.process is not None:
                            replica.process.stop()
                    self._stop_simulator()

    def _delete_namespaces(self) -> None:
        """Delete the soak's namespaces and wait until they are gone, while the replicas still run.

        Stopping the replicas first would leave the namespaces terminating behind the operator's
        finalizers, still labelled, and later tests on the same cluster would see them as members.
        """
        # Every namespace ever made, not only the live set: a deletion refused by an injected fault left
        # its namespace in place although the soak stopped counting it (404s are ignored).
        for namespace in self.created:
            self.cluster.delete_namespace(namespace)
        core = self._core()

        def gone() -> bool:
            remaining = {item.metadata.name for item in core.list_namespace().items}
            return not remaining.intersection(self.created)

        try:
            cluster_mod.poll(gone, timeout=60, interval=0.2, message="the soak's namespaces are deleted")
        except cluster_mod.PollTimeout as timeout:
            raise AssertionError(f"{timeout}; what holds them: {self._holding()}") from None

    def _holding(self) -> dict[str, list[str]]:
        """For each soak namespace still there: the objects left in it with their finalizers."""
        remaining = {item.metadata.name for item in self._core().list_namespace().items} & set(self.created)
        rbac = kubernetes.client.RbacAuthorizationV1Api(self._client)
        held: dict[str, list[str]] = {}
        for namespace in sorted(remaining):
            servers = self._custom().list_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers")
            ns = self._core().read_namespace(namespace)
            held[namespace] = (
                [
                    f"Namespace deleting since {ns.metadata.deletion_timestamp} phase={ns.status.phase}"
                    f" conditions={[(c.type, c.message) for c in ns.status.conditions or []]}"
                ]
                + [
                    f"MCPServer/{item['metadata']['name']} {item['metadata'].get('finalizers')}"
                    f" deleting={bool(item['metadata'].get('deletionTimestamp'))}"
                    for item in servers["items"]
                ]
                + [
                    f"RoleBinding/{item.metadata.name} {item.metadata.finalizers} {item.metadata.annotations}"
                    for item in rbac.list_namespaced_role_binding(namespace).items
                ]
            )
        return held

    def _start(self, replica: Replica) -> None:
        replica.starts += 1
        replica.expected_exit = False
        replica.restart_at = None
        replica.term_sent_at = None
        env = {**LEASE_ENV, "POD_NAME": replica.pod_name}
        replica.process = processes.start(
            self.installation,
            replica.deployment,
            logdir=self.logdir / f"{replica.pod_name}.{replica.starts}",
            extra_env=env,
        )

    def _start_simulator(self) -> None:
        ready = threading.Event()

        async def main() -> None:
            api = await kube.Api.connect(kubeconfig=str(self.cluster.kubeconfig))
            self._simulator_stop = asyncio.Event()
            self._simulator_loop = asyncio.get_running_loop()
            task = asyncio.create_task(workloads.WorkloadSimulator(api).run())
            ready.set()
            try:
                await self._simulator_stop.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await api.close()
                await asyncio.sleep(0)

        self._simulator = threading.Thread(target=asyncio.run, args=(main(),), name="simulator", daemon=True)
        self._simulator.start()
        ready.wait(timeout=10)

    def _stop_simulator(self) -> None:
        if self._simulator is None or self._simulator_loop is None or self._simulator_stop is None:
            return
        self._simulator_loop.call_soon_threadsafe(self._simulator_stop.set)
        self._simulator.join(timeout=10)

    # -- chaos --------------------------------------------------------------------------------------

    def seed_namespaces(self, count: int) -> None:
        for _ in range(count):
            self._create_namespace()

    def run_chaos(self, seconds: float) -> None:
        """Random operations for `seconds`, one every 20-150 ms, restarting killed replicas on the way.

        However short the run, both operator replicas are SIGKILLed at a quarter of it and both discovery
        replicas at two thirds; random kills come on top.
        """
        started = time.monotonic()
        script = [(0.25, install.OPERATOR), (0.66, install.DISCOVERY)]
        while (elapsed := time.monotonic() - started) < seconds:
            self._supervise()
            if script and elapsed >= script[0][0] * seconds:
                self._last_kill[script[0][1]] = time.monotonic()
                self._kill(script.pop(0)[1], both=True)
            self._one_operation()
            time.sleep(self.rng.uniform(0.02, 0.15))

    def quiesce(self) -> None:
        """No more faults; every replica running (restarted if down)."""
        if self.cluster.loopback is not None:
            self.cluster.loopback.faults.clear()
        for replica in self.replicas:
            self._reap(replica)
            if replica.process is None or not replica.process.alive():
                self._start(replica)

    def unexpected_exits(self) -> list[str]:
        for replica in self.replicas:
            self._reap(replica)
        return self.tally.crashes

    def rejected(self) -> list[str]:
        """Requests of the processes refused as invalid or forbidden (never injected ones), counted."""
        if self.cluster.loopback is None:
            return []
        counts: collections.Counter[str] = collections.Counter()
        for request in self.cluster.loopback.requests:
            if request.status in (400, 403, 422) and request.user in self.users:
                who = request.user.rsplit(":", 1)[-1]
                counts[f"{who} {request.verb} {request.resource} -> {request.status}"] += 1
        return [f"{count} x {line}" for line, count in sorted(counts.items())]

    def logs(self) -> str:
        parts = []
        for replica in self.replicas:
            if replica.process is not None:
                parts.append(f"--- {replica.pod_name} (start {replica.starts})\n{replica.process.tail(30)}")
        return "\n".join(parts)

    def _supervise(self) -> None:
        now = time.monotonic()
        if self._outage_until is not None and now >= self._outage_until:
            assert self.cluster.loopback is not None
            self.cluster.loopback.faults.clear()  # ends the outage (and any pending one-off faults)
            self._outage_until = None
        for replica in self.replicas:
            self._reap(replica)
            if replica.restart_at is not None and now >= replica.restart_at:
                self._start(replica)

    def _reap(self, replica: Replica) -> None:
        """Notice a replica that exited; one we did not signal is a crash (recorded with its log)."""
        process = replica.process
        if process is None or replica.restart_at is not None:
            return
        if process.alive():
            sent = replica.term_sent_at
            if sent is not None and time.monotonic() - sent > TERM_DEADLINE:
                self.tally.crashes.append(
                    f"{replica.pod_name} still running {TERM_DEADLINE:g}s after SIGTERM:\n{process.tail(30)}"
                )
                replica.term_sent_at = None  # reported once
            return
        if replica.term_sent_at is not None:
            self.tally.shutdowns.append(time.monotonic() - replica.term_sent_at)
        if not replica.expected_exit:
            self.tally.crashes.append(
                f"{replica.pod_name} exited with {process.popen.returncode}:\n{process.tail(30)}"
            )
        replica.restart_at = time.monotonic() + self.rng.uniform(0.3, 2.0)

    def _one_operation(self) -> None:
        choices: list[tuple[str, float]] = [
            ("label", 4),
            ("create_namespace", 1),
            ("delete_namespace", 0.7),
            ("create_mcpserver", 3),
            ("update_mcpserver", 2),
            ("delete_mcpserver", 1.5),
            ("kill", 0.5),
            ("term", 0.3),
        ]
        if self.inject_faults:
            choices += [("fault", 2), ("drop_watches", 0.7), ("latency", 0.5), ("outage", 0.15)]
        names, weights = zip(*choices, strict=True)
        action = self.rng.choices(names, weights=weights)[0]
        try:
            getattr(self, f"_do_{action}")()
        except kubernetes.client.ApiException as exc:
            if exc.status not in (404, 409, 429, 500, 503):  # gone, taken, or an injected outage
                raise
            self.tally.operations[f"{action}-{exc.status}"] += 1

    # -- operations ---------------------------------------------------------------------------------

    def _core(self) -> Any:
        return kubernetes.client.CoreV1Api(self._client)

    def _custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self._client)

    def _create_namespace(self) -> None:
        labels = {LABEL: "true"} if self.rng.random() < 0.6 else None
        name = self.cluster.create_namespace("soak", labels=labels)
        self.namespaces.append(name)
        self.created.append(name)
        self.tally.operations["create_namespace"] += 1

    def _do_create_namespace(self) -> None:
        if len(self.namespaces) < 8:
            self._create_namespace()

    def _do_delete_namespace(self) -> None:
        if len(self.namespaces) <= 3:
            return
        name = self.rng.choice(self.namespaces)
        self.namespaces.remove(name)
        self.cluster.delete_namespace(name)
        self.tally.operations["delete_namespace"] += 1

    def _do_label(self) -> None:
        name = self.rng.choice(self.namespaces)
        value = self.rng.choice(["true", None, "false", "true"])
        other = self.rng.choice([None, "a", "b"])
        self._core().patch_namespace(name, {"metadata": {"labels": {LABEL: value, "soak/other": other}}})
        self.tally.operations["label"] += 1

    def _server_body(self, namespace: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": self._spec(),
        }

    def _spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "image": f"ghcr.io/stackloklabs/gofetch/server:1.0.{self.rng.randrange(5)}",
            "transport": self.rng.choice(["streamable-http", "sse", "stdio"]),
        }
        if self.rng.random() < 0.3:
            spec["args"] = [f"--flag={self.rng.randrange(100)}"]
        if self.rng.random() < 0.2:
            # Valid for the CRD, refused by the operator (fails closed): phase Failed naming the field.
            spec["oidcConfigRef"] = {"name": "corporate-idp", "audience": "soak"}
        return spec

    def _do_create_mcpserver(self) -> None:
        namespace = self.rng.choice(self.namespaces)
        name = self.rng.choice(SERVER_NAMES)
        self._custom().create_namespaced_custom_object(
            GROUP, VERSION, namespace, "mcpservers", self._server_body(namespace, name)
        )
        self.tally.operations["create_mcpserver"] += 1

    def _do_update_mcpserver(self) -> None:
        namespace = self.rng.choice(self.namespaces)
        name = self.rng.choice(SERVER_NAMES)
        spec = self._spec()
        if "oidcConfigRef" not in spec:
            spec["oidcConfigRef"] = None  # merge patch: remove it (an invalid server becomes valid)
        self._custom().patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "mcpservers", name, {"spec": spec}
        )
        self.tally.operations["update_mcpserver"] += 1

    def _do_delete_mcpserver(self) -> None:
        namespace = self.rng.choice(self.namespaces)
        name = self.rng.choice(SERVER_NAMES)
        self._custom().delete_namespaced_custom_object(GROUP, VERSION, namespace, "mcpservers", name)
        self.tally.operations["delete_mcpserver"] += 1

    def _cooling_down(self, deployment: str) -> bool:
        last = self._last_kill.get(deployment)
        if last is not None and time.monotonic() - last < KILL_COOLDOWN:
            return True
        self._last_kill[deployment] = time.monotonic()
        return False

    def _do_kill(self) -> None:
        """SIGKILL one replica, or (one time in three) both replicas of one kind at once."""
        deployment = self.rng.choice([install.DISCOVERY, install.OPERATOR])
        if not self._cooling_down(deployment):
            self._kill(deployment, both=self.rng.random() < 0.33)

    def _kill(self, deployment: str, *, both: bool) -> None:
        group = [r for r in self.replicas if r.deployment == deployment]
        victims = group if both else [self.rng.choice(group)]
        for replica in victims:
            self._signal(replica, signal.SIGKILL)
        if len(victims) == REPLICAS:
            self.tally.kills[f"{deployment}-both"] += 1
            # Both down: bring them back within MAX_OUTAGE (one of them at least).
            first = victims[0]
            if first.restart_at is None or first.restart_at > time.monotonic() + MAX_OUTAGE:
                first.restart_at = time.monotonic() + self.rng.uniform(0.5, MAX_OUTAGE)

    def _do_term(self) -> None:
        replica = self.rng.choice(self.replicas)
        if not self._cooling_down(replica.deployment):
            self._signal(replica, signal.SIGTERM)

    def _signal(self, replica: Replica, sig: signal.Signals) -> None:
        process = replica.process
        if process is None or not process.alive():
            return
        replica.expected_exit = True
        process.popen.send_signal(sig)
        if sig is signal.SIGKILL:
            process.popen.wait(timeout=10)
            replica.restart_at = time.monotonic() + self.rng.uniform(0.3, 2.5)
            self.tally.kills[f"sigkill-{replica.deployment}"] += 1
        else:
            replica.term_sent_at = time.monotonic()
            self.tally.kills[f"sigterm-{replica.deployment}"] += 1  # restarted once it has exited

    def _do_fault(self) -> None:
        assert self.cluster.loopback is not None
        status = self.rng.choice(FAULT_STATUSES)
        count = self.rng.randint(1, 6)
        self.cluster.loopback.faults.add(
            status=status,
            verb=self.rng.choice(FAULT_VERBS),
            count=count,
            user=self.rng.choice(self.users),
            retry_after=1 if status in (429, 503) else None,  # whole seconds, as a real API server
        )
        self.tally.faults[str(status)] += count

    def _do_drop_watches(self) -> None:
        assert self.cluster.loopback is not None
        dropped = self.cluster.loopback.faults.drop_watches()
        self.tally.faults["dropped-watches"] += dropped

    def _do_latency(self) -> None:
        assert self.cluster.loopback is not None
        self.cluster.loopback.faults.latency(self.rng.uniform(0.1, 0.8), count=self.rng.randint(5, 30))
        self.tally.faults["latency-spikes"] += 1

    def _do_outage(self) -> None:
        """Every request of every client fails with 503 (or 500) for 0.5-3 s: an API server restart."""
        assert self.cluster.loopback is not None
        if self._outage_until is not None:
            return
        self.cluster.loopback.faults.add(status=self.rng.choice((500, 503)), count=None, retry_after=1)
        self._outage_until = time.monotonic() + self.rng.uniform(0.5, 3.0)
        self.tally.faults["outages"] += 1

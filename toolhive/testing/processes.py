"""Run the operator and discovery as real subprocesses, configured exactly as the chart's Deployments are.

Each process gets the rendered container environment (`Installation.env`), its own ServiceAccount
kubeconfig, and ports set to 0 (several may run on one machine). Used by the e2e tests and the benchmarks
(honest RSS and CPU per process); the demo runs both in-process instead. Output goes to a log file whose
tail is attached to failures. Never signals anything but the processes it started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from toolhive.testing import install

COMMANDS: Final = {install.OPERATOR: "run", install.DISCOVERY: "discovery"}
# Variables of the caller's shell that would change what the process does; the chart's env replaces them.
_INHERITED_PREFIXES: Final = ("TOOLHIVE_", "OTEL_", "KUBECONFIG", "WATCH_NAMESPACE", "POD_")


@dataclasses.dataclass
class Process:
    """One started process: its name (the Deployment's), the Popen handle and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's output (for failure messages)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return int(self.popen.returncode)


def environment(
    installation: install.Installation, deployment: str, *, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for `deployment`'s process: the chart's env, its kubeconfig, ports off, `extra`."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)}
    identity = installation.identities[deployment]
    return {
        **base,
        **installation.env(deployment),
        "KUBECONFIG": str(identity.kubeconfig),
        "TOOLHIVE_OBSERVABILITY__METRICS_PORT": "0",
        "TOOLHIVE_OBSERVABILITY__HEALTH_PORT": "0",
        "TOOLHIVE_OBSERVABILITY__LOG_FORMAT": "text",
        **(extra or {}),
    }


def start(
    installation: install.Installation,
    deployment: str,
    *,
    logdir: Path,
    extra_env: Mapping[str, str] | None = None,
    profile: Path | None = None,
) -> Process:
    """Start `toolhive-operator run|discovery` for Deployment `deployment` of the installation.

    With `profile`, the process runs under cProfile and writes its stats there when it stops (SIGTERM).
    """
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    command = [sys.executable, *profiler, "-m", "toolhive.cli", COMMANDS[deployment]]
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{deployment}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(installation, deployment, extra=extra_env),
        )
    return Process(deployment, popen, log)


@contextlib.contextmanager
def running(
    installation: install.Installation,
    *,
    logdir: Path,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[dict[str, Process]]:
    """Every process the installation has an identity for (operator, and discovery in discovery mode).

    Yields them by Deployment name; stops them all on exit (SIGTERM, then SIGKILL).
    """
    started: dict[str, Process] = {}
    try:
        for deployment in COMMANDS:
            if deployment in installation.identities:
                env = (extra_env or {}).get(deployment)
                started[deployment] = start(installation, deployment, logdir=logdir, extra_env=env)
        yield started
    finally:
        for process in started.values():
            process.stop()

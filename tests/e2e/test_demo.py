"""The demo (`make demo`, the README's first command) plays its whole story and exits 0.

Runs `toolhive-operator demo` as a user would, in a subprocess, on the loopback API; against a real
cluster (TOOLHIVE_TEST_KUBECONFIG) `demo --cluster` runs as well. These tests keep the demo from rotting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

from tests import cluster as cluster_mod

DEMO = [sys.executable, "-m", "toolhive.cli", "demo"]


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


def test_the_demo_onboards_team_b_revokes_team_a_and_prints_the_onboarding_trace() -> None:
    result = run_demo()
    output = result.stdout
    assert result.returncode == 0, f"demo failed:\n{output}\n{result.stderr}"
    assert re.search(r"team-a/fetch reconciled in \d+ ms: phase Ready", output)
    assert "team-b/fetch: status none, Deployment none, operator RoleBinding none" in output
    assert re.search(r"team-b onboarded: RoleBinding after \d+ ms, Deployment after \d+ ms", output)
    assert "finalizers left on team-a/fetch: none" in output
    assert re.search(r"gone after \d+ ms \(nothing stuck\)", output)
    assert "members ['team-b'], pending [], draining []" in output
    trace = output.split("== 4.")[1]
    assert (
        trace.index("discovery.decide") < trace.index("discovery.grant") < trace.index("toolhive.reconcile")
    )
    assert "toolhive.apply Deployment" in trace
    assert "done: every step happened" in output


def test_demo_keep_leaves_the_api_running_with_a_kubeconfig_until_interrupted(tmp_path: Path) -> None:
    with (
        (tmp_path / "stderr").open("w") as stderr,
        subprocess.Popen([*DEMO, "--keep"], stdout=subprocess.PIPE, stderr=stderr, text=True) as process,
    ):
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if "onboard it again" in line:
                    break
            text = "".join(lines)
            match = re.search(r"export KUBECONFIG=(\S+)", text)
            assert match, f"no kubeconfig printed:\n{text}"
            config = Path(match.group(1))
            handle = cluster_mod.Cluster(kubeconfig=config, workdir=tmp_path)
            with handle.api_client() as client:
                names = {
                    ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items
                }
            assert {"team-a", "team-b", "toolhive-system"} <= names, f"the kept API serves {names}"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.skipif(
    not os.environ.get(cluster_mod.ENV_KUBECONFIG), reason="needs a real cluster (TOOLHIVE_TEST_KUBECONFIG)"
)
def test_the_demo_plays_against_a_real_cluster_and_cleans_up() -> None:
    env = {**os.environ, "KUBECONFIG": os.environ[cluster_mod.ENV_KUBECONFIG]}
    result = run_demo("--cluster", env=env)
    assert result.returncode == 0, f"demo --cluster failed:\n{result.stdout}\n{result.stderr}"
    assert "namespaces toolhive-demo-team-a and toolhive-demo-team-b deleted" in result.stdout

"""The discovery uninstall hook: a pre-delete Job running `discovery cleanup` as discovery's ServiceAccount.

Rendered only in discovery mode with `discovery.cleanupOnUninstall` and discovery's leader election (the
Job takes discovery's Lease); the pod follows the same hardening as every other pod of the chart and carries
discovery's settings, so it revokes exactly the grants that discovery made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart import objects
from toolhive.testing import helm as helm_tool

JOB = "toolhive-discovery-uninstall"


def jobs(docs: list[objects.Manifest]) -> list[objects.Manifest]:
    return objects.of_kind(docs, "Job")


@pytest.mark.parametrize("mode", ["cluster", "static", "namespaced"])
def test_no_hook_outside_discovery_mode(helm: helm_tool.Helm, chart: Path, mode: str) -> None:
    assert jobs(helm.template(chart, values=objects.MODES[mode])) == []


@pytest.mark.parametrize(
    "discovery",
    [{"cleanupOnUninstall": False}, {"leaderElection": {"enabled": False}}],
    ids=["switched off", "without leader election"],
)
def test_no_hook_when_switched_off_or_without_a_lease_to_take(
    helm: helm_tool.Helm, chart: Path, discovery: dict[str, Any]
) -> None:
    values = objects.merged(objects.DISCOVERY, {"discovery": discovery})
    assert jobs(helm.template(chart, values=values)) == []


def test_without_leader_election_the_notes_say_how_to_clean_up(helm: helm_tool.Helm, chart: Path) -> None:
    values = objects.merged(objects.DISCOVERY, {"discovery": {"leaderElection": {"enabled": False}}})
    notes = helm.notes(chart, values=values)
    assert "discovery.cleanupOnUninstall needs discovery.leaderElection.enabled" in notes
    assert "toolhive-operator discovery cleanup" in notes


def test_the_hook_is_a_pre_delete_job_as_discovery_with_its_settings(
    helm: helm_tool.Helm, chart: Path
) -> None:
    docs = helm.template(chart, values=objects.DISCOVERY)
    job = objects.named(docs, "Job", JOB)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-delete"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    # Longer than the command's own timeout (grace 30 + 60): the command reports what is left first.
    assert spec["activeDeadlineSeconds"] == 210
    pod = spec["template"]["spec"]
    discovery = objects.named(docs, "Deployment", "toolhive-discovery")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == discovery["serviceAccountName"] == "toolhive-discovery"
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == discovery["securityContext"]
    container = pod["containers"][0]
    assert container["args"] == ["discovery", "cleanup", "--timeout-seconds", "90"]
    assert container["securityContext"] == discovery["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert container["env"] == discovery["containers"][0]["env"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["TOOLHIVE_LEADER_ELECTION__ENABLED"] == "true"
    # The lease the Job takes is the one discovery's Role lets it write.
    assert objects.named(docs, "Role", "toolhive-discovery-leader-election")


def test_the_timeout_follows_the_release_grace(helm: helm_tool.Helm, chart: Path) -> None:
    values = objects.merged(
        objects.DISCOVERY, {"operator": {"rbac": {"discovery": {"releaseGraceSeconds": 100}}}}
    )
    job = objects.named(helm.template(chart, values=values), "Job", JOB)
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "160"
    assert job["spec"]["activeDeadlineSeconds"] == 280


def test_a_non_boolean_switch_is_rejected_naming_the_key(helm: helm_tool.Helm, chart: Path) -> None:
    values = objects.merged(objects.DISCOVERY, {"discovery": {"cleanupOnUninstall": "yes"}})
    with pytest.raises(helm_tool.HelmError) as raised:
        helm.template(chart, values=values)
    assert "cleanupOnUninstall" in raised.value.stderr

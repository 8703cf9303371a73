"""The chart as files: lint, golden renders, generated files in step with their sources, image wiring.

Regenerate the golden renders after an intended chart change with
`TOOLHIVE_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/chart -k golden`, then review the diff.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.chart import objects
from tests.tools import helm as helm_tool
from toolhive import cli

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("TOOLHIVE_REGENERATE_GOLDEN") == "1"


def load_sync(chart: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_sync", chart / "hack" / "sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses resolve their annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", sorted(objects.MODES), ids=lambda mode: f"helm lint passes in {mode} mode")
def test_lint(helm: helm_tool.Helm, chart: Path, mode: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(objects.MODES[mode]))
    output = helm.run(["lint", str(chart), "--strict", "--values", str(values)])
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("mode", sorted(objects.MODES), ids=lambda mode: f"{mode} mode render matches golden")
def test_golden_render(helm: helm_tool.Helm, chart: Path, mode: str) -> None:
    rendered = helm.template_text(chart, values=objects.MODES[mode])
    golden = GOLDEN / f"{mode}.yaml"
    if REGENERATE:
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} missing: run with TOOLHIVE_REGENERATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{mode} render drifted: TOOLHIVE_REGENERATE_GOLDEN=1 regenerates"


def test_schema_and_crd_copies_are_in_step_with_their_sources(chart: Path) -> None:
    problems = load_sync(chart).check()
    assert problems == [], "run `make chart` (python chart/hack/sync.py):\n" + "\n".join(problems)


def test_schema_generation_refuses_an_undocumented_key(chart: Path) -> None:
    sync = load_sync(chart)
    with pytest.raises(sync.ValuesError, match=r"operator\.newKey: every key needs a comment"):
        sync.build_schema("# The operator.\noperator:\n  # Documented.\n  replicaCount: 1\n  newKey: 2\n")


def test_chart_crds_are_the_repository_crds(helm: helm_tool.Helm, chart: Path) -> None:
    sources = sorted((chart.parent / "crds").glob("*.yaml"))
    docs = helm.template(chart, extra=["--include-crds"])
    rendered = {doc["metadata"]["name"] for doc in objects.of_kind(docs, "CustomResourceDefinition")}
    expected = {yaml.safe_load(source.read_text())["metadata"]["name"] for source in sources}
    assert rendered == expected


def test_crds_are_not_templated_so_a_plain_render_has_none(helm: helm_tool.Helm, chart: Path) -> None:
    # Helm installs crds/ before any template (so the NamespaceDiscovery object maps) and never deletes them.
    assert objects.of_kind(helm.template(chart), "CustomResourceDefinition") == []


def test_app_version_is_the_package_version(chart: Path) -> None:
    chart_yaml = yaml.safe_load((chart / "Chart.yaml").read_text())
    project = tomllib.loads((chart.parent / "pyproject.toml").read_text())["project"]
    assert chart_yaml["appVersion"] == project["version"]


def test_default_image_is_the_published_operator_image_at_app_version(
    helm: helm_tool.Helm, chart: Path
) -> None:
    app_version = yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    deployment = objects.named(helm.template(chart), "Deployment", "toolhive-operator")
    image = objects.container(deployment)["image"]
    assert image == f"ghcr.io/toolhive-operator/toolhive-operator:{app_version}"


def test_dockerfile_runs_the_console_script_as_the_charts_non_root_user(chart: Path) -> None:
    dockerfile = (chart.parent / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\d+):(\d+)$", final_stage, re.MULTILINE)
    assert user is not None and int(user[1]) != 0
    assert 'ENTRYPOINT ["toolhive-operator"]' in final_stage
    scripts = tomllib.loads((chart.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert "toolhive-operator" in scripts
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert values["operator"]["containerSecurityContext"]["runAsUser"] == int(user[1])


def test_container_args_are_commands_of_the_console_script(helm: helm_tool.Helm, chart: Path) -> None:
    parser = cli.build_parser()
    docs = helm.template(chart, values=objects.DISCOVERY)
    commands = {}
    for deployment in objects.of_kind(docs, "Deployment"):
        args = objects.container(deployment)["args"]
        commands[deployment["metadata"]["name"]] = parser.parse_args(args).command
    assert commands == {"toolhive-operator": "run", "toolhive-discovery": "discovery"}

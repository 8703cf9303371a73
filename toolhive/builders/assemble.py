"""`build_all`: every object one MCPServer needs, in the order they are applied.

Pure: no I/O. Called by the reconciler once per pass. Order is data (kind rank, as lightkube's
`sort_objects`): ServiceAccounts, Role, RoleBinding, ConfigMap, Service, Deployment, so an identity and its
permissions exist before the pods that use them, and the RunConfig before the runner that reads it.
Deleting goes the other way round (`reversed(desired.manifests)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Final

from toolhive.api import models
from toolhive.builders import deployment, inputs, rbac, runconfig, service, serviceaccount, status

KIND_RANK: Final = ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "Deployment")


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
    manifests += [
        rbac.build_proxy_runner_role(server, config=config),
        rbac.build_proxy_runner_rolebinding(server, config=config),
        runconfig.build_runconfig_configmap(server, config=config),
        service.build_proxy_service(server, config=config),
        deployment.build_proxy_deployment(server, config=config),
    ]
    # Stable sort: the two ServiceAccounts keep proxy-runner first.
    manifests.sort(key=lambda manifest: KIND_RANK.index(manifest["kind"]))
    return Desired(
        manifests=tuple(manifests),
        url=status.build_url(server),
        replicas_capped=deployment.decide_replicas(server.spec).capped,
    )

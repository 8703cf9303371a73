"""Create this project's CRDs through a `discovery.kube.Api` (tests and benchmarks on the loopback API).

The manifests are the generated ones (`toolhive.api.crds`, the same as `crds/`, which a test keeps in
sync). Callers wait for the new resources to be served themselves: what "served" means differs per test.
"""

from __future__ import annotations

from typing import Final

from discovery import kube
from toolhive.api import crds

CUSTOM_RESOURCE_DEFINITIONS: Final = kube.Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)


async def create_all(api: kube.Api) -> None:
    """Create every CRD the project ships, in file-name order."""
    for _, manifest in sorted(crds.build_all().items()):
        await api.create(CUSTOM_RESOURCE_DEFINITIONS, manifest)

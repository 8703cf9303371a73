"""Our CustomResourceDefinitions, described once: names, versions, printer columns, labels.

Pure: no I/O. `toolhive-operator crds --write|--check` (cli.py) writes or compares `render_all()`
against `crds/`; tests and the loopback API install the same manifests. Discovery's models stay free of
the API group (discovery is a generic library), so the group and the root object are supplied here.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from discovery import models as discovery_models
from toolhive import constants
from toolhive.api import crdgen, models

# Every ToolHive CRD carries this label; ToolHive's StorageVersionMigrator acts on it.
AUTO_MIGRATE_LABEL: Final = {"toolhive.stacklok.dev/auto-migrate-storage-version": "true"}
CATEGORY: Final = "toolhive"

MCPSERVER_FILE: Final = f"{constants.GROUP}_{constants.MCPSERVER_PLURAL}.yaml"
NAMESPACEDISCOVERY_FILE: Final = f"{constants.GROUP}_{discovery_models.PLURAL}.yaml"
NAMESPACEDISCOVERY_VERSION: Final = "v1alpha1"


class NamespaceDiscovery(BaseModel):
    """Label-driven namespace discovery: the namespaces the ToolHive operator is granted (cluster-scoped)."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    api_version: str = Field(f"{constants.GROUP}/{NAMESPACEDISCOVERY_VERSION}", alias="apiVersion")
    kind: str = discovery_models.KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: discovery_models.NamespaceDiscoverySpec = Field(
        default_factory=discovery_models.NamespaceDiscoverySpec, description="Which namespaces are selected."
    )
    status: discovery_models.NamespaceDiscoveryStatus | None = Field(
        None, description="Published membership, written by the discovery process."
    )


def build_mcpserver_crd() -> dict[str, Any]:
    """MCPServer: namespaced, v1alpha1 (deprecated) and v1beta1 (storage), one schema, as upstream."""
    versions = [
        crdgen.Version(
            name="v1alpha1",
            deprecation_warning=f"{constants.GROUP}/v1alpha1 is deprecated; use v1beta1",
        ),
        crdgen.Version(name="v1beta1", storage=True),
    ]
    return crdgen.build_crd(
        models.MCPServer,
        group=constants.GROUP,
        kind=constants.MCPSERVER_KIND,
        plural=constants.MCPSERVER_PLURAL,
        scope="Namespaced",
        versions=versions,
        short_names=("mcpserver", "mcpservers"),
        categories=(CATEGORY,),
        printer_columns=(
            crdgen.PrinterColumn("Status", ".status.phase"),
            crdgen.PrinterColumn("Ready", ".status.conditions[?(@.type=='Ready')].status"),
            crdgen.PrinterColumn("Replicas", ".status.readyReplicas", "integer"),
            crdgen.PrinterColumn("URL", ".status.url"),
            crdgen.PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
        labels=AUTO_MIGRATE_LABEL,
    )


def build_namespacediscovery_crd() -> dict[str, Any]:
    """NamespaceDiscovery: cluster-scoped, v1alpha1 only; columns from discovery's published counts."""
    return crdgen.build_crd(
        NamespaceDiscovery,
        group=constants.GROUP,
        kind=discovery_models.KIND,
        plural=discovery_models.PLURAL,
        singular=discovery_models.SINGULAR,
        scope=discovery_models.SCOPE,
        versions=[crdgen.Version(name=NAMESPACEDISCOVERY_VERSION, storage=True)],
        short_names=discovery_models.SHORT_NAMES,
        categories=discovery_models.CATEGORIES,
        printer_columns=[
            crdgen.PrinterColumn(column["name"], column["jsonPath"], column["type"])  # type: ignore[arg-type]
            for column in discovery_models.PRINTER_COLUMNS
        ],
        labels=AUTO_MIGRATE_LABEL,
    )


def build_all() -> dict[str, dict[str, Any]]:
    """Every CRD this project ships, by file name under `crds/`."""
    return {MCPSERVER_FILE: build_mcpserver_crd(), NAMESPACEDISCOVERY_FILE: build_namespacediscovery_crd()}


def render_all() -> dict[str, str]:
    """File name -> YAML text, byte-identical on every run (the drift test compares these)."""
    return {name: crdgen.render(manifest) for name, manifest in sorted(build_all().items())}

"""The proxy runner Deployment `<name>`: one `toolhive` container running `thv-proxyrunner run`.

Pure: no I/O. Called by `builders.build_all`. The runner reads its configuration from the RunConfig
ConfigMap mounted at `/etc/runconfig`, is told the MCP server pod's identity and secrets through
`--k8s-pod-patch`, and creates the backend StatefulSet itself. Two pod-template annotations decide when
the proxy pods roll:

- `toolhive.stacklok.dev/runconfig-checksum`: any RunConfig change rolls the pods, because the runner reads
  its file only at start.
- `toolhive.stacklok.dev/mcpserver-generation` (ToolHive #5360): the generation, projected into the
  container as `THV_MCPSERVER_GENERATION`, is frozen per pod, so during a rollout an old pod can never
  re-apply an older StatefulSet over a newer one (the runner refuses to apply a generation lower than the
  one already stamped). The price: every spec change rolls the proxy pods, even one that only touches,
  say, Service labels. A proxy restart is cheap, and a gate that is sometimes not bumped would be unsound.

Replicas: `spec.replicas` when set; unset leaves the field out so an autoscaler can own it; stdio is capped
at one (one proxy per attached stdin). `decide_replicas` tells the reconciler whether the cap applied.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from toolhive import constants, names
from toolhive.api import models
from toolhive.builders import inputs, meta, podpatch, runconfig, serviceaccount

# Variables ToolHive always sets on the runner (EnsureRequiredEnvVars): it writes its config under
# $HOME/$XDG_CONFIG_HOME, which must be the writable emptyDir because the root filesystem is read-only.
REQUIRED_ENV: Final = {
    "HOME": "/tmp",
    "TOOLHIVE_RUNTIME": "kubernetes",
    "UNSTRUCTURED_LOGS": "false",
    "XDG_CONFIG_HOME": "/tmp",
}
TERMINATION_GRACE_SECONDS: Final = 30
HEALTH_PATH: Final = "/health"
PORT_NAME: Final = "http"


@dataclasses.dataclass(frozen=True)
class ReplicaPlan:
    """What `spec.replicas` becomes on the Deployment."""

    replicas: int | None
    """The Deployment's `spec.replicas`; None leaves the field to an autoscaler."""
    capped: bool
    """True when a stdio server asked for more than one replica and got one (StdioReplicaCapped)."""


def decide_replicas(spec: models.MCPServerSpec) -> ReplicaPlan:
    """Replicas for the proxy Deployment, with stdio capped at one."""
    if spec.replicas is None:
        return ReplicaPlan(replicas=None, capped=False)
    if spec.transport is models.Transport.STDIO and spec.replicas > 1:
        return ReplicaPlan(replicas=1, capped=True)
    return ReplicaPlan(replicas=spec.replicas, capped=False)


def _proxy_overrides(spec: models.MCPServerSpec) -> models.ProxyDeploymentOverrides:
    overrides = spec.resource_overrides
    if overrides is not None and overrides.proxy_deployment is not None:
        return overrides.proxy_deployment
    return models.ProxyDeploymentOverrides()


def proxy_env(server: inputs.Server) -> list[dict[str, Any]]:
    """Environment of the runner container, sorted by name.

    `resourceOverrides.proxyDeployment.env` may override the defaults (e.g. TOOLHIVE_DEBUG), never the
    generation variable, which must come from the pod's own annotation.
    """
    values = dict(REQUIRED_ENV)
    values.update({var.name: var.value for var in _proxy_overrides(server.spec).env})
    if any(key.startswith("TOOLHIVE_SECRET_") for key in values):
        # ToolHive switches the runner to reading secrets from its environment when any are given.
        values.setdefault("TOOLHIVE_SECRETS_PROVIDER", "environment")
    values.pop(constants.ENV_MCPSERVER_GENERATION, None)
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in values.items()]
    env.append(
        {
            "name": constants.ENV_MCPSERVER_GENERATION,
            "valueFrom": {
                # apiVersion spelled out: the API server defaults it, and a missing one reads as drift.
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{constants.ANNOTATION_GENERATION}']",
                }
            },
        }
    )
    return sorted(env, key=lambda var: str(var["name"]))


def runner_args(server: inputs.Server) -> list[str]:
    """`run --k8s-pod-patch=<json> <image>`: the image is positional, as the runner's CLI requires."""
    return ["run", f"--k8s-pod-patch={podpatch.render_pod_patch(server)}", server.spec.image]


def _http_probe(**timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": HEALTH_PATH, "port": PORT_NAME}, **timing}


def _volumes(server: inputs.Server) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) of the runner pod."""
    volumes: list[dict[str, Any]] = [
        {"name": "runconfig", "configMap": {"name": names.runconfig_name(server.name)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "runconfig", "mountPath": constants.RUNCONFIG_MOUNT_PATH, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    profile = server.spec.permission_profile
    if profile is not None and profile.type is models.PermissionProfileType.CONFIGMAP:
        volumes.append({"name": "permission-profile", "configMap": {"name": profile.name}})
        mounts.append(
            {"name": "permission-profile", "mountPath": runconfig.PERMISSION_PROFILE_DIR, "readOnly": True}
        )
    return volumes, mounts


def _security_contexts(config: inputs.BuildConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts meeting the restricted Pod Security Standard."""
    identity: dict[str, Any] = {}
    if config.run_as_user is not None:
        identity = {"runAsUser": config.run_as_user, "runAsGroup": config.run_as_user}
    pod = {
        "runAsNonRoot": True,
        **identity,
        **({"fsGroup": config.run_as_user} if config.run_as_user is not None else {}),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        **identity,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return meta.sorted_map(pod), meta.sorted_map(container)


def build_proxy_deployment(
    server: inputs.Server, *, config: inputs.BuildConfig, runconfig_checksum: str | None = None
) -> inputs.Manifest:
    """Deployment `<name>` running the proxy runner for `server`.

    `runconfig_checksum`: the RunConfig ConfigMap's checksum when the caller built it already (rendering
    `runconfig.json` is the costliest step of a build); computed here otherwise.
    """
    if runconfig_checksum is None:
        runconfig_checksum = runconfig.runconfig_checksum(server, config=config)
    overrides = _proxy_overrides(server.spec)
    template_overrides = overrides.pod_template_metadata_overrides or models.ResourceMetadataOverrides()
    template_annotations = meta.merged(
        {
            constants.ANNOTATION_RUNCONFIG_CHECKSUM: runconfig_checksum,
            constants.ANNOTATION_GENERATION: str(server.generation),
        },
        template_overrides.annotations,
    )
    volumes, mounts = _volumes(server)
    pod_security, container_security = _security_contexts(config)
    container: dict[str, Any] = {
        "name": constants.PROXY_CONTAINER,
        "image": config.runner_image,
        "args": runner_args(server),
        "env": proxy_env(server),
        "ports": [{"name": PORT_NAME, "containerPort": server.spec.proxy_port, "protocol": "TCP"}],
        # ToolHive's timings: up to 90 s to start, then liveness after 30 s and readiness after 5 s.
        "startupProbe": _http_probe(periodSeconds=5, timeoutSeconds=3, failureThreshold=18),
        "livenessProbe": _http_probe(
            initialDelaySeconds=30, periodSeconds=10, timeoutSeconds=5, failureThreshold=3
        ),
        "readinessProbe": _http_probe(
            initialDelaySeconds=5, periodSeconds=5, timeoutSeconds=3, failureThreshold=3
        ),
        "securityContext": container_security,
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.proxy_runner_name(server.name),
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": pod_security,
        "containers": [container],
        "volumes": volumes,
    }
    pull_secrets = serviceaccount.image_pull_secrets(server, config=config)
    if pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secrets

    spec: dict[str, Any] = {}
    plan = decide_replicas(server.spec)
    if plan.replicas is not None:
        spec["replicas"] = plan.replicas
    spec["selector"] = {"matchLabels": meta.selector_labels(server)}
    spec["template"] = {
        "metadata": {
            "labels": meta.merged(meta.standard_labels(server), template_overrides.labels),
            "annotations": template_annotations,
        },
        "spec": pod_spec,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(
            server,
            names.deployment_name(server.name),
            labels=meta.merged(meta.standard_labels(server), overrides.labels),
            annotations=overrides.annotations,
        ),
        "spec": spec,
    }

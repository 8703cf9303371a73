"""Install the chart into an API server the way a user would, for the demo, the e2e tests and the benchmarks.

Two paths, one result (`Installation`): on the loopback API the chart is rendered with the real `helm`
(`--include-crds`) and every document is server-side applied with the admin token; on a real cluster it
is `helm install`ed (with zero replicas: the processes run here, under the chart's ServiceAccounts).
Either way each process gets a TokenRequest token for its ServiceAccount, a kubeconfig of its own, and
the environment the chart's Deployment would give it. Synchronous (official `kubernetes` client); never
touches the user's kubeconfig or helm configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

import toolhive
from toolhive.testing import helm as helm_tool
from toolhive.testing import kubeconfig as kubeconfig_tool

CHART: Final = Path(toolhive.__file__).resolve().parents[1] / "chart"
FIELD_MANAGER: Final = "toolhive-install"
RELEASE: Final = "toolhive-operator"
NAMESPACE: Final = "toolhive-system"
OPERATOR: Final = "toolhive-operator"
DISCOVERY: Final = "toolhive-discovery"

# Apply order (lightkube's sort_objects idea): definitions and identities before what refers to them.
_KIND_RANK: Final = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "ServiceAccount": 2,
    "ClusterRole": 3,
    "ClusterRoleBinding": 4,
    "Role": 5,
    "RoleBinding": 6,
}
# Plurals of the built-in kinds the chart renders; custom kinds take theirs from the rendered CRDs.
_PLURALS: Final = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Job": "jobs",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "CustomResourceDefinition": "customresourcedefinitions",
}
_CLUSTER_SCOPED: Final = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
_ENV_REFERENCE: Final = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_HOOK: Final = "helm.sh/hook"
# What concerns the chart's pods, which do not exist here (the processes run outside the cluster).
_POD_KINDS: Final = ("Deployment", "PodDisruptionBudget")
_INSTALL_HOOKS: Final = frozenset({"pre-install", "post-install"})


@dataclasses.dataclass(frozen=True)
class Identity:
    """One process's ServiceAccount, its bearer token and a kubeconfig that uses it."""

    name: str
    namespace: str
    token: str
    kubeconfig: Path


@dataclasses.dataclass(frozen=True)
class Installation:
    """What was installed: the rendered documents and, per process, its identity and environment."""

    release: str
    namespace: str
    documents: tuple[dict[str, Any], ...]
    identities: Mapping[str, Identity]
    """By ServiceAccount name (`toolhive-operator`, and `toolhive-discovery` in discovery mode)."""
    helm_installed: bool

    def env(self, deployment: str, *, pod_name: str | None = None) -> dict[str, str]:
        """The container environment the chart gives Deployment `deployment` (Downward API resolved)."""
        return container_env(
            self.documents, deployment, namespace=self.namespace, pod_name=pod_name or f"{deployment}-local"
        )

    def kinds(self) -> list[str]:
        """`Kind name` of every rendered document, in apply order (for printing)."""
        return [f"{doc['kind']} {doc['metadata']['name']}" for doc in sort_documents(self.documents)]


def locate_helm(*, home: Path) -> helm_tool.Helm:
    """helm from PATH or the pinned binary fetched into the cache (exactly as the chart tests find it)."""
    return helm_tool.Helm(helm_tool.locate(), home=home)


def render(
    helm: helm_tool.Helm,
    values: Mapping[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """`helm template --include-crds` of the chart with `values`; every non-empty document.

    The chart is read from the source tree (the demo runs from a clone, `pip install -e`); a
    FileNotFoundError says so when it is not there.
    """
    if not (chart / "Chart.yaml").is_file():
        raise FileNotFoundError(
            f"no Helm chart at {chart}: run from a clone of the repository (pip install -e .)"
        )
    return helm.template(chart, values=values, release=release, namespace=namespace, extra=["--include-crds"])


def sort_documents(documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Documents in apply order: CRDs, Namespaces, ServiceAccounts, RBAC, then the rest (stable)."""
    ranked = sorted(enumerate(documents), key=lambda pair: (_KIND_RANK.get(pair[1]["kind"], 99), pair[0]))
    return [dict(doc) for _, doc in ranked]


def apply_documents(
    client: Any,
    documents: Iterable[Mapping[str, Any]],
    *,
    namespace: str,
    skip_kinds: Sequence[str] = _POD_KINDS,
) -> list[str]:
    """Server-side apply every document (admin `client`); returns `Kind namespace/name` of each applied.

    Namespaced documents without a namespace land in `namespace` (what `helm install -n` does). CRDs are
    waited for until they are served. `skip_kinds` are left out (the processes run outside the cluster).
    """
    ordered = [doc for doc in sort_documents(documents) if runs_at_install(doc)]
    plurals = dict(_PLURALS)
    for doc in ordered:
        if doc["kind"] == "CustomResourceDefinition":
            plurals[doc["spec"]["names"]["kind"]] = doc["spec"]["names"]["plural"]
    applied = []
    for doc in ordered:
        kind = doc["kind"]
        if kind in skip_kinds:
            continue
        if kind not in plurals:
            raise ValueError(f"install: no plural known for kind {kind!r} ({doc['metadata']['name']})")
        body = dict(doc)
        metadata = dict(body["metadata"])
        scoped = kind not in _CLUSTER_SCOPED and kind not in _cluster_scoped_custom(ordered)
        if scoped:
            metadata.setdefault("namespace", namespace)
        body["metadata"] = metadata
        path = _path(
            body["apiVersion"], plurals[kind], metadata["name"], metadata.get("namespace") if scoped else None
        )
        _call(
            client,
            "PATCH",
            path,
            body=body,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        )
        if kind == "CustomResourceDefinition":
            _wait_served(client, body)
        applied.append(f"{kind} {metadata.get('namespace', '') + '/' if scoped else ''}{metadata['name']}")
    return applied


def is_hook(doc: Mapping[str, Any]) -> bool:
    """A Helm hook: not part of the release's resources, so uninstall never deletes it (as Helm)."""
    return "helm.sh/hook" in ((doc.get("metadata") or {}).get("annotations") or {})


def runs_at_install(document: Mapping[str, Any]) -> bool:
    """False for Helm hooks that do not run on install (pre-delete, pre-upgrade, test, ...): not applied."""
    hooks = ((document.get("metadata") or {}).get("annotations") or {}).get(_HOOK)
    return hooks is None or bool(_INSTALL_HOOKS & {hook.strip() for hook in str(hooks).split(",")})


def request_token(client: Any, namespace: str, name: str, *, expiration_seconds: int = 3600) -> str:
    """A bearer token for ServiceAccount namespace/name through the TokenRequest API."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration_seconds},
    }
    answer = _call(client, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body=body)
    return str(answer["status"]["token"])


def write_identity_kubeconfig(admin_kubeconfig: Path, token: str, path: Path, *, namespace: str) -> Path:
    """A kubeconfig with the admin one's server and CA, authenticating with `token` (mode 0600)."""
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    context = _named(doc, "contexts", doc.get("current-context"))
    cluster = _named(doc, "clusters", context.get("cluster"))
    out = kubeconfig_tool.build(str(cluster["server"]), token, namespace=namespace)
    out["clusters"][0]["cluster"] = dict(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    path.chmod(0o600)
    return path


def install(
    values: Mapping[str, Any],
    *,
    admin_kubeconfig: Path,
    workdir: Path,
    use_helm_install: bool = False,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    helm: helm_tool.Helm | None = None,
) -> Installation:
    """Install the chart with `values` and give each of its processes a token and a kubeconfig.

    `use_helm_install` (real clusters): `helm install --create-namespace --wait=false` with zero replicas
    for both Deployments; otherwise the render is applied document by document (the loopback API).
    """
    helm = helm or locate_helm(home=workdir / "helm-home")
    documents = render(helm, values, release=release, namespace=namespace)
    with _admin_client(admin_kubeconfig) as client:
        _ensure_namespace(client, namespace)
        if use_helm_install:
            # No pods in the cluster: the processes run outside it, so no uninstall hook Job either.
            zero = {
                "operator": {"replicaCount": 0},
                "discovery": {"replicaCount": 0, "cleanupOnUninstall": False},
            }
            merged = _merge(dict(values), zero)
            helm.run(
                [
                    "install",
                    release,
                    str(CHART),
                    "--namespace",
                    namespace,
                    "--kubeconfig",
                    str(admin_kubeconfig),
                    "--values",
                    "-",
                ],
                stdin=yaml.safe_dump(merged),
            )
        else:
            apply_documents(client, documents, namespace=namespace)
        identities = {}
        for doc in documents:
            if doc["kind"] != "ServiceAccount":
                continue
            name = doc["metadata"]["name"]
            sa_namespace = doc["metadata"].get("namespace", namespace)
            token = _poll(
                lambda n=name, ns=sa_namespace: request_token(client, ns, n), what=f"token for {name}"
            )
            path = write_identity_kubeconfig(
                admin_kubeconfig, token, workdir / f"{name}.kubeconfig", namespace=sa_namespace
            )
            identities[name] = Identity(name, sa_namespace, token, path)
    return Installation(release, namespace, tuple(documents), identities, use_helm_install)


def uninstall(installation: Installation, *, admin_kubeconfig: Path, workdir: Path) -> None:
    """Undo `install`: `helm uninstall` (real clusters), or delete what was applied, CRDs kept (as helm)."""
    if installation.helm_installed:
        helm = locate_helm(home=workdir / "helm-home")
        helm.run(
            [
                "uninstall",
                installation.release,
                "--namespace",
                installation.namespace,
                "--kubeconfig",
                str(admin_kubeconfig),
                "--wait=false",
            ]
        )
        return
    with _admin_client(admin_kubeconfig) as client:
        plurals = dict(_PLURALS)
        for doc in installation.documents:
            if doc["kind"] == "CustomResourceDefinition":
                plurals[doc["spec"]["names"]["kind"]] = doc["spec"]["names"]["plural"]
        for doc in reversed(sort_documents(installation.documents)):
            kind = doc["kind"]
            if kind == "CustomResourceDefinition" or kind in _POD_KINDS or is_hook(doc):
                continue
            scoped = kind not in _CLUSTER_SCOPED and kind not in _cluster_scoped_custom(
                installation.documents
            )
            ns = doc["metadata"].get("namespace", installation.namespace) if scoped else None
            try:
                _call(client, "DELETE", _path(doc["apiVersion"], plurals[kind], doc["metadata"]["name"], ns))
            except _ApiFailure as failure:
                if failure.status != 404:
                    raise


def container_env(
    documents: Iterable[Mapping[str, Any]],
    deployment: str,
    *,
    namespace: str,
    pod_name: str,
    kind: str = "Deployment",
) -> dict[str, str]:
    """The env of the first container of Deployment (or Job, by `kind`) `deployment` in the render.

    `POD_NAMESPACE`/`POD_NAME` (Downward API) become `namespace`/`pod_name`; `$(VAR)` references are
    expanded as the kubelet does; values from Secrets or ConfigMaps are not supported (none rendered).
    """
    for doc in documents:
        if doc["kind"] == kind and doc["metadata"]["name"] == deployment:
            container = doc["spec"]["template"]["spec"]["containers"][0]
            break
    else:
        raise LookupError(f"the render has no {kind} {deployment!r}")
    downward = {"metadata.namespace": namespace, "metadata.name": pod_name}
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
        else:
            field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
            if field not in downward:
                raise ValueError(f"env {item['name']}: only metadata.name/namespace fieldRefs are supported")
            value = downward[field]
        env[item["name"]] = _ENV_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def settings_from_env(env: Mapping[str, str], **overrides: Any) -> dict[str, Any]:
    """`Settings(**result)` keyword arguments from `TOOLHIVE_<GROUP>__<FIELD>` variables (plus overrides).

    For in-process runs, where two processes share one `os.environ`. `overrides` are merged per group.
    """
    kwargs: dict[str, Any] = {}
    for key, value in env.items():
        if key in ("POD_NAMESPACE", "POD_NAME"):
            kwargs[key.lower()] = value
        elif key.startswith("TOOLHIVE_") and "__" in key:
            group, field = key.removeprefix("TOOLHIVE_").lower().split("__", 1)
            kwargs.setdefault(group, {})[field] = value
        elif key == "WATCH_NAMESPACE":
            kwargs.setdefault("rbac", {})["watch_namespaces"] = value
    return _merge(kwargs, overrides)


# --- plumbing -----------------------------------------------------------------------------------------


class _ApiFailure(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@contextlib.contextmanager
def _admin_client(kubeconfig: Path) -> Iterator[Any]:
    """The official client's ApiClient for the admin kubeconfig (no global configuration touched)."""
    import kubernetes

    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


def _call(
    client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = "application/json",
    query: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    import json

    import kubernetes

    headers = {"Accept": "application/json", "Content-Type": content_type}
    method, url, headers, body, _ = client.param_serialize(
        method,
        path,
        query_params=list(query),
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = client.call_api(method, url, header_params=headers, body=body)
    except kubernetes.client.ApiException as exc:
        raise _ApiFailure(int(exc.status or 0), str(exc.body or exc.reason)) from None
    data = response.read()
    if response.status >= 400:
        raise _ApiFailure(int(response.status), data.decode(errors="replace"))
    return dict(json.loads(data)) if data else {}


def _path(api_version: str, plural: str, name: str, namespace: str | None) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}/{name}"


def _cluster_scoped_custom(documents: Iterable[Mapping[str, Any]]) -> set[str]:
    return {
        doc["spec"]["names"]["kind"]
        for doc in documents
        if doc["kind"] == "CustomResourceDefinition" and doc["spec"].get("scope") == "Cluster"
    }


def _wait_served(client: Any, crd: Mapping[str, Any]) -> None:
    group = crd["spec"]["group"]
    version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served", True))
    plural = crd["spec"]["names"]["plural"]
    _poll(lambda: _call(client, "GET", f"/apis/{group}/{version}/{plural}"), what=f"CRD {plural} served")


def _ensure_namespace(client: Any, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    try:
        _call(client, "POST", "/api/v1/namespaces", body=body)
    except _ApiFailure as failure:
        if failure.status != 409:
            raise


def _poll(fn: Any, *, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except _ApiFailure as failure:
            if time.monotonic() > deadline or failure.status not in (403, 404, 503):
                raise _ApiFailure(failure.status, f"{what}: {failure}") from None
        time.sleep(0.05)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _named(doc: Mapping[str, Any], section: str, name: Any) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return dict(entry.get(section[:-1]) or {})
    raise ValueError(f"kubeconfig has no {section[:-1]} named {name!r}")

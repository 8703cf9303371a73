"""The invariants that must hold once the system has quiesced, checked through the API only.

`check(api, target)` reads Namespaces, the NamespaceDiscovery object, managed RoleBindings, MCPServers and
the objects labelled `toolhive=true`, recomputes what *should* be there independently (`discovery.policy`
for membership, `toolhive.builders.build_all` for desired objects) and returns one `Violation` per broken
rule, each a sentence. It never writes, so it runs against the loopback API and a real cluster alike.
Called by the chaos soak (polled until it passes) and by the checker's own tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final

from discovery import constants as dconst
from discovery import kube, models, policy
from toolhive import builders, constants, resources
from toolhive.api import validation
from toolhive.builders.inputs import BuildConfig

Body = dict[str, Any]

# Kinds whose objects the operator (or the proxy runner) labels `toolhive=true`.
LABELLED_KINDS: Final = (
    resources.SERVICEACCOUNTS,
    resources.ROLES,
    resources.ROLEBINDINGS,
    resources.CONFIGMAPS,
    resources.SERVICES,
    resources.DEPLOYMENTS,
    resources.STATEFULSETS,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """What was installed: whose grants to check and how the operator builds objects."""

    release_namespace: str = "toolhive-system"
    discovery_name: str = "toolhive-operator"
    cluster_role: str = "toolhive-operator-manager-role"
    subject_name: str = "toolhive-operator"
    rolebinding_name: str = "toolhive-operator"
    protected: tuple[str, ...] = models.DEFAULT_DENY_NAMESPACES
    build: BuildConfig = dataclasses.field(default_factory=BuildConfig)
    expect_ready: bool = True
    """Valid MCPServers must be `phase: Ready` (loopback with the workload simulator, or a real cluster
    whose images run); False accepts Pending as well."""
    namespaces: frozenset[str] | None = None
    """Only judge MCPServers and labelled objects in these namespaces (None: all). Grants are always
    judged cluster-wide, since discovery's member set is."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Target:
        """From the operator's container environment as the chart renders it (`Installation.env`)."""
        image = env.get("TOOLHIVE_OPERATOR__RUNNER_IMAGE")
        secrets = env.get("TOOLHIVE_OPERATOR__IMAGE_PULL_SECRETS", "")
        build = BuildConfig(
            **({"runner_image": image} if image else {}),
            image_pull_secrets=tuple(item.strip() for item in secrets.split(",") if item.strip()),
        )
        fields: dict[str, Any] = {
            "release_namespace": env.get("POD_NAMESPACE", cls.release_namespace),
            "discovery_name": env.get("TOOLHIVE_DISCOVERY__RESOURCE_NAME", cls.discovery_name),
            "cluster_role": env.get("TOOLHIVE_DISCOVERY__CLUSTER_ROLE", cls.cluster_role),
            "subject_name": env.get("TOOLHIVE_DISCOVERY__SUBJECT_NAME", cls.subject_name),
            "rolebinding_name": env.get("TOOLHIVE_DISCOVERY__ROLEBINDING_NAME", cls.rolebinding_name),
            "build": build,
        }
        return cls(**{**fields, **overrides})


@dataclasses.dataclass(frozen=True)
class Violation:
    """One broken invariant: which rule, and a sentence naming the object."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclasses.dataclass
class Snapshot:
    """Everything the checks read, fetched once."""

    namespaces: dict[str, Body]
    discovery: Body | None
    grants: list[Body]
    mcpservers: list[Body]
    labelled: list[Body]


async def gather(api: kube.Api, target: Target) -> Snapshot:
    """Read the cluster state the rules judge (lists only)."""
    namespaces, _ = await api.list(kube.NAMESPACES)
    found = await api.get_or_none(resources.NAMESPACEDISCOVERIES, target.discovery_name)
    selector = (
        f"{dconst.MANAGED_BY_LABEL}={dconst.MANAGED_BY_VALUE},{dconst.OWNER_LABEL}={target.discovery_name}"
    )
    grants, _ = await api.list(resources.ROLEBINDINGS, label_selector=selector)
    servers, _ = await api.list(resources.MCPSERVERS)
    labelled: list[Body] = []
    for res in LABELLED_KINDS:
        items, _ = await api.list(res, label_selector=f"{constants.LABEL_TOOLHIVE}=true")
        labelled += items
    return Snapshot(
        namespaces={ns["metadata"]["name"]: ns for ns in namespaces},
        discovery=found,
        grants=grants,
        mcpservers=servers,
        labelled=labelled,
    )


async def check(api: kube.Api, target: Target) -> list[Violation]:
    """Every violation of the quiescent-state invariants, in a stable order (empty: all hold)."""
    return evaluate(await gather(api, target), target)


def evaluate(snapshot: Snapshot, target: Target) -> list[Violation]:
    """The pure half of `check`: judge a snapshot."""
    violations: list[Violation] = []
    members = expected_members(snapshot, target)
    violations += _check_discovery_object(snapshot, members, target)
    violations += _check_grants(snapshot, members, target)
    violations += _check_mcpservers(snapshot, members, target)
    violations += _check_owners(snapshot, members, target)
    violations += _check_terminating(snapshot, target)
    return violations


def describe(snapshot: Snapshot, target: Target) -> str:
    """One line on what was judged: members, and MCPServers by phase (in the target's namespaces)."""
    members = expected_members(snapshot, target)
    phases: dict[str, int] = {}
    outside = 0
    for server in snapshot.mcpservers:
        namespace = server["metadata"]["namespace"]
        if target.namespaces is not None and namespace not in target.namespaces:
            continue
        if namespace not in members:
            outside += 1
            continue
        phase = str((server.get("status") or {}).get("phase"))
        phases[phase] = phases.get(phase, 0) + 1
    served = ", ".join(f"{count} {phase}" for phase, count in sorted(phases.items())) or "none"
    return (
        f"{len(members)} member namespaces, {len(snapshot.grants)} grants; MCPServers served: {served}; "
        f"{outside} outside member namespaces"
    )


def expected_members(snapshot: Snapshot, target: Target) -> frozenset[str]:
    """Members recomputed from the namespaces and the NamespaceDiscovery spec (pure policy)."""
    if snapshot.discovery is None:
        return frozenset()
    spec = models.NamespaceDiscoverySpec.model_validate(snapshot.discovery.get("spec") or {})
    compiled = policy.SelectorPolicy.from_spec(spec, protected=target.protected)
    infos = [policy.NamespaceInfo.from_manifest(ns) for ns in snapshot.namespaces.values()]
    return policy.members_of(compiled.decide_all(infos))


# --- rules ---------------------------------------------------------------------------------------------


def _check_discovery_object(snapshot: Snapshot, members: frozenset[str], target: Target) -> list[Violation]:
    rule = "published-membership"
    found = snapshot.discovery
    if found is None:
        return [Violation(rule, f"NamespaceDiscovery {target.discovery_name} does not exist")]
    out = []
    status = found.get("status") or {}
    generation = found["metadata"].get("generation")
    if status.get("observedGeneration") != generation:
        out.append(
            Violation(
                rule,
                f"NamespaceDiscovery {target.discovery_name}: status.observedGeneration is "
                f"{status.get('observedGeneration')!r}, but metadata.generation is {generation!r}",
            )
        )
    published = set(status.get("members") or [])
    if published != members:
        out.append(
            Violation(
                rule,
                f"NamespaceDiscovery {target.discovery_name}: status.members {_diff(published, members)}",
            )
        )
    for key in ("pending", "draining"):
        if status.get(key):
            out.append(
                Violation(
                    rule,
                    f"NamespaceDiscovery {target.discovery_name}: status.{key} is {sorted(status[key])} "
                    "after quiescence (expected empty)",
                )
            )
    return out


def _check_grants(snapshot: Snapshot, members: frozenset[str], target: Target) -> list[Violation]:
    rule = "grants-equal-members"
    out = []
    by_namespace: dict[str, list[Body]] = {}
    for grant in snapshot.grants:
        by_namespace.setdefault(grant["metadata"]["namespace"], []).append(grant)
    for namespace in sorted(set(by_namespace) - members):
        names = ", ".join(sorted(g["metadata"]["name"] for g in by_namespace[namespace]))
        out.append(
            Violation(rule, f"namespace {namespace} is not a member but keeps managed RoleBinding {names}")
        )
    for namespace in sorted(members):
        grants = by_namespace.get(namespace, [])
        if not grants:
            out.append(Violation(rule, f"namespace {namespace} is a member but has no managed RoleBinding"))
            continue
        for grant in grants:
            out += _check_grant(grant, target)
    return out


def _check_grant(grant: Body, target: Target) -> list[Violation]:
    rule = "grants-equal-members"
    meta = grant["metadata"]
    where = f"RoleBinding {meta['namespace']}/{meta['name']}"
    out = []
    if meta["name"] != target.rolebinding_name:
        out.append(Violation(rule, f"{where} is managed but not named {target.rolebinding_name}"))
    role = grant.get("roleRef") or {}
    if (role.get("kind"), role.get("name")) != ("ClusterRole", target.cluster_role):
        out.append(
            Violation(
                rule,
                f"{where} binds {role.get('kind')} {role.get('name')}, not ClusterRole {target.cluster_role}",
            )
        )
    subjects = [(s.get("kind"), s.get("name"), s.get("namespace")) for s in grant.get("subjects") or []]
    wanted = ("ServiceAccount", target.subject_name, target.release_namespace)
    if subjects != [wanted]:
        out.append(Violation(rule, f"{where} binds subjects {subjects}, expected only {list(wanted)}"))
    annotations = meta.get("annotations") or {}
    if dconst.DRAINING_ANNOTATION in annotations:
        out.append(Violation(rule, f"{where} of a member namespace is still marked draining"))
    if meta.get("deletionTimestamp"):
        out.append(Violation(rule, f"{where} of a member namespace is being deleted"))
    return out


def _check_mcpservers(snapshot: Snapshot, members: frozenset[str], target: Target) -> list[Violation]:
    out = []
    labelled = _index(snapshot.labelled)
    for server in sorted(snapshot.mcpservers, key=_key):
        meta = server["metadata"]
        namespace = meta["namespace"]
        if target.namespaces is not None and namespace not in target.namespaces:
            continue
        where = f"MCPServer {namespace}/{meta['name']}"
        finalizers = meta.get("finalizers") or []
        if namespace not in members:
            if constants.FINALIZER in finalizers:
                out.append(
                    Violation(
                        "no-finalizer-outside-members",
                        f"{where} keeps finalizer {constants.FINALIZER} although {namespace} is not a member",
                    )
                )
            continue
        if _terminating(snapshot.namespaces.get(namespace)):
            continue
        if meta.get("deletionTimestamp"):
            out.append(
                Violation("mcpserver-state", f"{where} is still being deleted (finalizers {finalizers})")
            )
            continue
        out += _check_server(server, labelled, target, where=where)
    return out


def _check_server(
    server: Body, labelled: Mapping[tuple[str, str, str], Body], target: Target, *, where: str
) -> list[Violation]:
    rule = "mcpserver-state"
    meta = server["metadata"]
    status = server.get("status") or {}
    out = []
    if status.get("observedGeneration") != meta.get("generation"):
        out.append(
            Violation(
                rule,
                f"{where}: status.observedGeneration is {status.get('observedGeneration')!r}, but "
                f"metadata.generation is {meta.get('generation')!r}",
            )
        )
    checked = validation.check(server)
    if checked.server is None or checked.problems:
        if status.get("phase") != "Failed":
            out.append(
                Violation(rule, f"{where} is invalid but its phase is {status.get('phase')!r}, not Failed")
            )
        messages = " ".join(
            str(c.get("message", "")) for c in status.get("conditions") or [] if c.get("status") == "False"
        )
        for problem in checked.problems:
            if problem.field_path not in messages:
                out.append(
                    Violation(
                        rule, f"{where}: no False condition names the invalid field {problem.field_path}"
                    )
                )
        return out
    if constants.FINALIZER not in (meta.get("finalizers") or []):
        out.append(Violation(rule, f"{where} is served but lacks finalizer {constants.FINALIZER}"))
    wanted_phases = ("Ready",) if target.expect_ready else ("Ready", "Pending")
    if status.get("phase") not in wanted_phases:
        out.append(
            Violation(
                rule, f"{where}: phase is {status.get('phase')!r}, expected {' or '.join(wanted_phases)}"
            )
        )
    desired = builders.build_all(checked.server, config=target.build)
    uid = meta["uid"]
    desired_keys = set()
    for manifest in desired.manifests:
        key = (manifest["kind"], meta["namespace"], manifest["metadata"]["name"])
        desired_keys.add(key)
        observed = labelled.get(key)
        name = f"{manifest['kind']} {meta['namespace']}/{manifest['metadata']['name']}"
        if observed is None:
            out.append(Violation(rule, f"{where}: desired {name} is missing"))
            continue
        if _controller_uid(observed) != uid:
            out.append(Violation(rule, f"{name} is not controlled by {where} (uid {uid})"))
        for field in _drift(manifest, observed):
            out.append(Violation(rule, f"{name} differs from its desired state at {field}"))
    for key, observed in sorted(labelled.items()):
        if key in desired_keys or _controller_uid(observed) != uid or key[0] == "StatefulSet":
            continue
        out.append(Violation(rule, f"{key[0]} {key[1]}/{key[2]} is controlled by {where} but not desired"))
    return out


def _check_owners(snapshot: Snapshot, members: frozenset[str], target: Target) -> list[Violation]:
    rule = "no-orphans"
    live = {s["metadata"]["uid"] for s in snapshot.mcpservers}
    servers = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in snapshot.mcpservers}
    out = []
    for obj in sorted(snapshot.labelled, key=_key):
        meta = obj["metadata"]
        namespace = meta["namespace"]
        if target.namespaces is not None and namespace not in target.namespaces:
            continue
        if meta.get("deletionTimestamp") or _terminating(snapshot.namespaces.get(namespace)):
            continue  # garbage collection is on it
        where = f"{obj['kind']} {namespace}/{meta['name']}"
        references = [
            r for r in meta.get("ownerReferences") or [] if r.get("kind") == constants.MCPSERVER_KIND
        ]
        if references:
            dead = [r for r in references if r.get("uid") not in live]
            if dead:
                out.append(
                    Violation(
                        rule,
                        f"{where} is owned by MCPServer {dead[0].get('name')} "
                        f"(uid {dead[0].get('uid')}), which no longer exists",
                    )
                )
        elif namespace in members:
            # The proxy runner creates its StatefulSet without an owner; the operator adopts it on its next
            # pass. Not while the MCPServer's spec is invalid (it then changes nothing), which is fine:
            # its finalizer deletes the StatefulSet by name.
            owner = (meta.get("labels") or {}).get(constants.LABEL_TOOLHIVE_NAME, "")
            server = servers.get((namespace, owner))
            if server is None:
                state = "does not exist"
            elif validation.check(server).valid:
                state = "exists and is valid"
            elif constants.FINALIZER in (server["metadata"].get("finalizers") or []):
                continue
            else:
                state = "is invalid and has no finalizer to delete it"
            out.append(
                Violation(
                    rule,
                    f"{where} in member namespace {namespace} has no owner "
                    f"(MCPServer {owner or '?'} {state}); the operator should adopt or delete it",
                )
            )
    return out


def _check_terminating(snapshot: Snapshot, target: Target) -> list[Violation]:
    rule = "no-stuck-namespace"
    out = []
    stuck = {
        name
        for name, ns in snapshot.namespaces.items()
        if _terminating(ns) and (target.namespaces is None or name in target.namespaces)
    }
    for grant in sorted(snapshot.grants, key=_key):
        meta = grant["metadata"]
        if meta["namespace"] in stuck and dconst.GRANT_FINALIZER in (meta.get("finalizers") or []):
            out.append(
                Violation(
                    rule,
                    f"namespace {meta['namespace']} is stuck terminating: RoleBinding "
                    f"{meta['name']} keeps finalizer {dconst.GRANT_FINALIZER}",
                )
            )
    for server in sorted(snapshot.mcpservers, key=_key):
        meta = server["metadata"]
        if meta["namespace"] in stuck and constants.FINALIZER in (meta.get("finalizers") or []):
            out.append(
                Violation(
                    rule,
                    f"namespace {meta['namespace']} is stuck terminating: MCPServer "
                    f"{meta['name']} keeps finalizer {constants.FINALIZER}",
                )
            )
    return out


# --- helpers -------------------------------------------------------------------------------------------

# Fields compared between a desired manifest and the live object: what the operator sets and nothing the
# API server defaults or normalises (resource quantities), so a real cluster is judged as fairly.
_COMPARED: Final = {
    "ServiceAccount": (("metadata", "labels"),),
    "Role": (("metadata", "labels"), ("rules",)),
    "RoleBinding": (("metadata", "labels"), ("roleRef",), ("subjects",)),
    "ConfigMap": (("metadata", "labels"), ("data",)),
    "Service": (("metadata", "labels"), ("spec", "selector")),
    "Deployment": (
        ("metadata", "labels"),
        ("spec", "replicas"),
        ("spec", "selector"),
        ("spec", "template", "metadata", "annotations"),
        ("spec", "template", "spec", "serviceAccountName"),
    ),
}


def _drift(desired: Body, observed: Body) -> list[str]:
    fields = []
    for path in _COMPARED.get(desired["kind"], ()):
        want, have = _at(desired, path), _at(observed, path)
        if want is not None and not _subset(want, have):
            fields.append(".".join(path))
    if desired["kind"] == "Deployment":
        want_images = [c.get("image") for c in _at(desired, ("spec", "template", "spec", "containers")) or []]
        have_images = [
            c.get("image") for c in _at(observed, ("spec", "template", "spec", "containers")) or []
        ]
        if want_images != have_images:
            fields.append("spec.template.spec.containers[*].image")
    return fields


def _at(body: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _subset(want: Any, have: Any) -> bool:
    """Every key of `want` is in `have` with a matching value (lists element-wise, same length)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(value, have.get(key)) for key, value in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    return bool(want == have)


def _index(objects: Iterable[Body]) -> dict[tuple[str, str, str], Body]:
    return {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}


def _controller_uid(obj: Body) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _terminating(namespace: Body | None) -> bool:
    return namespace is not None and policy.NamespaceInfo.from_manifest(namespace).terminating


def _key(obj: Body) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj.get("kind", ""), meta.get("namespace", ""), meta["name"])


def _diff(have: set[str], want: frozenset[str]) -> str:
    extra, missing = sorted(have - want), sorted(want - have)
    parts = [f"lists non-members {extra}"] if extra else []
    if missing:
        parts.append(f"misses members {missing}")
    return " and ".join(parts)

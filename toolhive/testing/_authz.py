"""Authentication and RBAC authorization for the loopback Kubernetes API, as kube-apiserver does them.

Pure: no I/O, no logging, no clock. Called by the loopback server once per request (authenticate, authorize,
forbidden texts) and on Role/ClusterRole/RoleBinding/ClusterRoleBinding writes (escalation checks). It never
stores RBAC objects: it reads them live from the server through `RbacObjects`, so bindings changed at run time
count on the next request. Semantics follow kubernetes/kubernetes `plugin/pkg/auth/authorizer/rbac` and
`pkg/registry/rbac` (rule matching, escalation `Covers`, messages); see the notes on each public function.

Aggregated ClusterRoles: as in Kubernetes the authorizer reads only `rules`; `aggregate_cluster_roles`
computes what the clusterrole-aggregation controller writes there, for the server to apply after ClusterRole
writes. Not implemented: impersonation, user `extra`/uid, the Node authorizer, webhook/OIDC/x509
authentication, JWT ServiceAccount tokens (tokens are opaque random strings) and token expiry (a token
works until its ServiceAccount is deleted).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

RBAC_GROUP: Final = "rbac.authorization.k8s.io"
MASTERS_GROUP: Final = "system:masters"
AUTHENTICATED_GROUP: Final = "system:authenticated"
UNAUTHENTICATED_GROUP: Final = "system:unauthenticated"
ANONYMOUS_USER: Final = "system:anonymous"
SERVICEACCOUNT_USER_PREFIX: Final = "system:serviceaccount:"
SERVICEACCOUNTS_GROUP: Final = "system:serviceaccounts"

RbacKind = Literal["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]

# Past this many distinct (user, namespace) pairs the resolution cache starts over; it only exists for speed.
_CACHE_LIMIT: Final = 4096
_DECISION_LIMIT: Final = 16384  # per request shape and namespace: ~15 shapes x 1000 namespaces fit


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """An authenticated user: name and groups, as kube-apiserver's user.Info (without uid and extra)."""

    name: str
    groups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RequestAttributes:
    """What an authorizer sees of one request (authorizer.Attributes).

    A resource request has a non-empty `resource`; otherwise the request is for the non-resource URL `path`
    (`/api`, `/version`, ...), which is always cluster-scoped.
    """

    user: UserInfo
    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return self.resource != ""


class RbacObjects(Protocol):
    """The server's live view of RBAC objects (plain dicts as stored, including those being deleted).

    `namespace` is given for Role and RoleBinding (only that namespace's objects) and None for the
    cluster-scoped kinds. An implementation may also offer `rbac_version() -> int`, a counter that changes
    after every Role/ClusterRole/RoleBinding/ClusterRoleBinding write becomes visible to `rbac_objects`;
    the Authorizer then caches resolved rules per (user, namespace) until it changes. Better still,
    `rbac_versions(namespace) -> (cluster, namespace)`: one counter for ClusterRole/ClusterRoleBinding
    writes and one per namespace for its Role/RoleBinding writes; then a write in one namespace leaves
    the cached resolutions of every other namespace valid. Finest, with `rbac_versions`:
    `rbac_subject_version(namespace, subject_key(...))` (writes of the namespace's RoleBindings that have or
    had such a subject) and `rbac_role_version(namespace, name)` (writes of one Role); then only writes
    that concern a user's bindings and their Roles invalidate its resolution.
    """

    def rbac_objects(self, kind: RbacKind, namespace: str | None = None) -> Iterable[Mapping[str, Any]]: ...


@dataclasses.dataclass(frozen=True)
class Decision:
    """An authorization outcome and its reason, as a SubjectAccessReview reports them."""

    allowed: bool
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Denial:
    """Why a write was refused, as the Kubernetes `Status` the server must answer with."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""

    def status(self) -> dict[str, Any]:
        """The response body (a `Status` object, as kube-apiserver writes it)."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": details,
            "code": self.code,
        }


# --- Authentication ------------------------------------------------------------------------------------


def serviceaccount_user(namespace: str, name: str) -> UserInfo:
    """The user a ServiceAccount token authenticates as, groups in kube-apiserver's order."""
    return UserInfo(
        name=f"{SERVICEACCOUNT_USER_PREFIX}{namespace}:{name}",
        groups=(SERVICEACCOUNTS_GROUP, f"{SERVICEACCOUNTS_GROUP}:{namespace}", AUTHENTICATED_GROUP),
    )


class Authenticator:
    """Bearer tokens to users: static tokens (`add_token`) and ServiceAccount tokens (TokenRequest).

    Every authenticated user also gets `system:authenticated`, as kube-apiserver's group adder does. With
    `anonymous=True` a request without an Authorization header is `system:anonymous` in
    `system:unauthenticated` (kube-apiserver's default); an invalid token is a 401 either way. Thread-safe.
    """

    def __init__(self, *, anonymous: bool = False) -> None:
        self._anonymous = anonymous
        self._lock = threading.Lock()
        self._tokens: dict[str, UserInfo] = {}
        self._sa_tokens: dict[tuple[str, str], set[str]] = {}

    def add_token(self, token: str, user: UserInfo) -> None:
        """Accept `token` as `user` (static token file semantics). Raises ValueError on an unusable token."""
        _check_token(token)
        if not user.name:
            raise ValueError("user.name: must not be empty")
        groups = user.groups if AUTHENTICATED_GROUP in user.groups else (*user.groups, AUTHENTICATED_GROUP)
        with self._lock:
            self._tokens[token] = UserInfo(user.name, groups)

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        """The user for an `Authorization` header value, or None for a 401 Unauthorized.

        Parsing follows kube-apiserver's bearer token authenticator: the scheme is case-insensitive, the token
        is the second space-separated field, and an empty token is invalid.
        """
        header = (authorization or "").strip()
        if not header:
            return UserInfo(ANONYMOUS_USER, (UNAUTHENTICATED_GROUP,)) if self._anonymous else None
        parts = header.split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return None
        return self._tokens.get(parts[1])

    def issue_serviceaccount_token(self, namespace: str, name: str) -> str:
        """A new token for ServiceAccount `namespace/name` (the caller checked that it exists)."""
        if not namespace:
            raise ValueError("namespace: must not be empty")
        if not name:
            raise ValueError("name: must not be empty")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = serviceaccount_user(namespace, name)
            self._sa_tokens.setdefault((namespace, name), set()).add(token)
        return token

    def forget_serviceaccount(self, namespace: str, name: str) -> None:
        """Invalidate every token issued for the ServiceAccount (deleted). Unknown accounts are a no-op."""
        with self._lock:
            for token in self._sa_tokens.pop((namespace, name), set()):
                self._tokens.pop(token, None)


def _check_token(token: str) -> None:
    if not token:
        raise ValueError("token: must not be empty")
    if any(ch.isspace() for ch in token):
        raise ValueError("token: must not contain whitespace (it travels as 'Bearer <token>')")


# --- Policy rules ---------------------------------------------------------------------------------------


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not value:
        return ()
    return tuple(str(item) for item in value)


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    """One PolicyRule, fields in their stored order (messages and rules reviews print them as given)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _Rule:
        return cls(
            verbs=_strings(raw, "verbs"),
            api_groups=_strings(raw, "apiGroups"),
            resources=_strings(raw, "resources"),
            resource_names=_strings(raw, "resourceNames"),
            non_resource_urls=_strings(raw, "nonResourceURLs"),
        )

    def allows(self, attrs: RequestAttributes) -> bool:
        """RuleAllows: verb, then group/resource/name for resource requests or the URL otherwise."""
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.is_resource_request:
            return any(_url_matches(owned, attrs.path) for owned in self.non_resource_urls)
        if "*" not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if not self._resource_matches(attrs.resource, attrs.subresource):
            return False
        # A rule with resourceNames never matches a request without a name (create, list, watch,
        # deletecollection): the name is unknown when the request is authorized.
        return not self.resource_names or attrs.name in self.resource_names

    def _resource_matches(self, resource: str, subresource: str) -> bool:
        combined = f"{resource}/{subresource}" if subresource else resource
        for owned in self.resources:
            if owned in ("*", combined):
                return True
            # "*/scale" matches the scale subresource of every resource, never a plain resource.
            if subresource and owned == f"*/{subresource}":
                return True
        return False

    def breakdown(self) -> list[_Rule]:
        """BreakdownRule: one rule per (group, resource, verb[, name]) and per (URL, verb)."""
        out: list[_Rule] = []
        for group in self.api_groups:
            for resource in self.resources:
                for verb in self.verbs:
                    if self.resource_names:
                        out.extend(
                            _Rule((verb,), (group,), (resource,), (name,)) for name in self.resource_names
                        )
                    else:
                        out.append(_Rule((verb,), (group,), (resource,)))
        for url in self.non_resource_urls:
            out.extend(_Rule(verbs=(verb,), non_resource_urls=(url,)) for verb in self.verbs)
        return out

    def covers(self, sub: _Rule) -> bool:
        """ruleCovers: does this (owner) rule grant everything in `sub` (an output of `breakdown`)."""
        if "*" not in self.verbs and not set(sub.verbs) <= set(self.verbs):
            return False
        if "*" not in self.api_groups and not set(sub.api_groups) <= set(self.api_groups):
            return False
        if not _resources_cover(self.resources, sub.resources):
            return False
        if not all(any(_url_matches(o, u) for o in self.non_resource_urls) for u in sub.non_resource_urls):
            return False
        if not sub.resource_names:
            return not self.resource_names
        return not self.resource_names or set(sub.resource_names) <= set(self.resource_names)

    def to_dict(self) -> dict[str, Any]:
        """The rule as the API serves it (empty lists omitted)."""
        out: dict[str, Any] = {}
        for key, values in (
            ("verbs", self.verbs),
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if values or key == "verbs":
                out[key] = list(values)
        return out

    def compact_string(self) -> str:
        """rbacv1helpers.CompactString, the form used in escalation messages."""
        parts = []
        for label, values in (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("NonResourceURLs", self.non_resource_urls),
            ("ResourceNames", self.resource_names),
            ("Verbs", self.verbs),
        ):
            if values:
                parts.append(f"{label}:{_go_quote_list(values)}")
        return "{" + ", ".join(parts) + "}"


def _url_matches(owned: str, path: str) -> bool:
    # "*" alone is every URL; a trailing "*" is a prefix match; anything else must be equal.
    return owned in ("*", path) or (owned.endswith("*") and path.startswith(owned.rstrip("*")))


def _resources_cover(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        if "/" not in resource:
            return False
        if "*/" + resource.split("/", 1)[1] not in owned:
            return False
    return True


def _compact(rules: Sequence[_Rule]) -> list[_Rule]:
    """CompactRules: merge single group/resource(/name) rules that differ only by verb."""
    out: list[_Rule] = []
    simple: dict[tuple[str, str, tuple[str, ...]], _Rule] = {}
    for rule in rules:
        if (
            len(rule.resource_names) <= 1
            and not rule.non_resource_urls
            and len(rule.api_groups) == 1
            and len(rule.resources) == 1
        ):
            key = (rule.api_groups[0], rule.resources[0], rule.resource_names)
            seen = simple.get(key)
            simple[key] = rule if seen is None else dataclasses.replace(seen, verbs=seen.verbs + rule.verbs)
        else:
            out.append(rule)
    return out + list(simple.values())


_NEEDS_ESCAPE: Final = re.compile(r'["\\\x00-\x1f\x7f]')


def _go_quote(value: str) -> str:
    """Go's %q for a string (strconv.Quote) for the characters that occur in names and paths."""
    if _NEEDS_ESCAPE.search(value) is None:
        return f'"{value}"'
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_quote_list(values: Iterable[str]) -> str:
    """Go's %q for a []string: ["a" "b"]."""
    return "[" + " ".join(_go_quote(v) for v in values) + "]"


def _aggregate(errors: Sequence[str]) -> str:
    """utilerrors.Aggregate's text: one message as is, several deduplicated in [a, b]."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


# --- Resolution: which rules apply to a user in a namespace ------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Grant:
    """The rules one binding grants one subject, with the binding described as the RBAC reason does."""

    source: str
    rules: tuple[_Rule, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Resolution:
    grants: tuple[_Grant, ...]
    # (roleRef kind, roleRef name) of bindings whose role could not be resolved.
    failures: tuple[tuple[str, str], ...]
    # Whether a rule names resources (resourceNames): only then does a request's name decide anything.
    named: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        named = any(rule.resource_names for grant in self.grants for rule in grant.rules)
        object.__setattr__(self, "named", named)

    @property
    def errors(self) -> tuple[str, ...]:
        """Resolution errors as the authorizer words them (client-go listers name the kind, singular)."""
        return tuple(_resolution_error(kind, name, registry=False) for kind, name in self.failures)

    @property
    def registry_errors(self) -> tuple[str, ...]:
        """The same errors as the rbac registry's resolver words them (storage names the resource)."""
        return tuple(_resolution_error(kind, name, registry=True) for kind, name in self.failures)

    def rules(self) -> tuple[_Rule, ...]:
        return tuple(rule for grant in self.grants for rule in grant.rules)


def _resolution_error(kind: str, name: str, *, registry: bool) -> str:
    if kind not in ("Role", "ClusterRole"):
        return f"unsupported role reference kind: {_go_quote(kind)}"
    # The authorizer reads roles through client-go listers, whose NotFound names the kind ("role"); the
    # rbac registry reads them from storage, whose NotFound names the resource ("roles").
    resource = kind.lower() + "s" if registry else kind.lower()
    return f"{resource}.{RBAC_GROUP} {_go_quote(name)} not found"


def _subject_applies(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        # In a RoleBinding a ServiceAccount subject without a namespace means the binding's namespace.
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.name == f"{SERVICEACCOUNT_USER_PREFIX}{sa_namespace}:{name}"
    return False


def subject_key(subject: Any, binding_namespace: str) -> tuple[str, str] | None:
    """The one user attribute a binding subject matches (`_subject_applies`), as a key: ("User", name),
    ("Group", name) or ("ServiceAccount", its user name); None for a subject that never applies."""
    if not isinstance(subject, Mapping):
        return None
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind in ("User", "Group"):
        return (kind, name) if isinstance(name, str) else None
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or binding_namespace
        return (
            ("ServiceAccount", f"{SERVICEACCOUNT_USER_PREFIX}{sa_namespace}:{name}") if sa_namespace else None
        )
    return None


@functools.lru_cache(maxsize=1024)
def _user_keys(user: UserInfo) -> tuple[tuple[str, str], ...]:
    """Every `subject_key` that applies to `user`."""
    return (("User", user.name), ("ServiceAccount", user.name), *(("Group", g) for g in user.groups))


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind = str(subject.get("kind") or "")
    name = str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return f"{kind} {_go_quote(name + '/' + (subject.get('namespace') or binding_namespace))}"
    return f"{kind} {_go_quote(name)}"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _role_ref(binding: Mapping[str, Any]) -> tuple[str, str, str]:
    ref = binding.get("roleRef")
    if not isinstance(ref, Mapping):
        return "", "", ""
    return str(ref.get("apiGroup") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")


class _RoleLookup:
    """Roles by name, listed from the store only when first needed, with their parsed rules.

    Lives for one cluster-scoped version at most. A namespace's Roles are kept with the version token
    (`namespace_token(namespace)`) they were listed at and listed again when it changed; without a
    token function the lookup lives for one store version at most and never relists.
    """

    def __init__(
        self, objects: RbacObjects, *, namespace_token: Callable[[str], object] | None = None
    ) -> None:
        self._objects = objects
        self._namespace_token = namespace_token
        self._cluster_roles: dict[str, Mapping[str, Any]] | None = None
        self._roles: dict[str, tuple[object, dict[str, Mapping[str, Any]]]] = {}
        self._parsed: dict[tuple[str, str, str], tuple[object, tuple[_Rule, ...] | None]] = {}

    def rules(self, kind: str, name: str, namespace: str) -> tuple[_Rule, ...] | None:
        """The parsed rules of a role, or None if it does not exist."""
        key = (kind, namespace, name)
        token = self._token(kind, namespace)
        hit = self._parsed.get(key)
        if hit is None or hit[0] != token:
            role = self.get(kind, name, namespace)
            hit = self._parsed[key] = (token, None if role is None else _parse_rules(role))
        return hit[1]

    def _token(self, kind: str, namespace: str) -> object:
        if kind == "ClusterRole" or not namespace or self._namespace_token is None:
            return None
        return self._namespace_token(namespace)

    def get(self, kind: str, name: str, namespace: str) -> Mapping[str, Any] | None:
        if kind == "ClusterRole":
            if self._cluster_roles is None:
                self._cluster_roles = _by_name(self._objects.rbac_objects("ClusterRole"))
            return self._cluster_roles.get(name)
        if not namespace:
            return None
        token = self._token(kind, namespace)
        entry = self._roles.get(namespace)
        if entry is None or entry[0] != token:
            entry = self._roles[namespace] = (token, _by_name(self._objects.rbac_objects("Role", namespace)))
        return entry[1].get(name)


def _by_name(objs: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(_meta(obj).get("name") or ""): obj for obj in objs}


def _parse_rules(obj: Mapping[str, Any]) -> tuple[_Rule, ...]:
    return tuple(_Rule.parse(raw) for raw in obj.get("rules") or () if isinstance(raw, Mapping))


# The escalation check for aggregationRule compares against this (cluster-admin's rules).
_FULL_AUTHORITY: Final = (
    _Rule(verbs=("*",), api_groups=("*",), resources=("*",)),
    _Rule(verbs=("*",), non_resource_urls=("*",)),
)


class Authorizer:
    """The RBAC authorizer plus the rbac registry's escalation checks, over the server's live objects.

    `system:masters` is always allowed (kube-apiserver's privileged-group authorizer). Everyone else is
    allowed what a ClusterRoleBinding grants anywhere, plus, in a namespace, what that namespace's
    RoleBindings grant there. Thread-safe: it holds only a cache keyed by the store's `rbac_version`.
    """

    def __init__(self, objects: RbacObjects) -> None:
        self._objects = objects
        versions = getattr(objects, "rbac_versions", None)
        version = getattr(objects, "rbac_version", None)
        self._versions: Callable[[str], tuple[int, int]] | None = None
        if callable(versions):
            self._versions = versions
        elif callable(version):
            # One counter for everything: the "cluster" part of the token changes on every write.
            self._versions = lambda namespace: (version(), 0)
        # (user, namespace) -> (the versions it was resolved at, the resolution)
        self._cache: dict[tuple[UserInfo, str], tuple[tuple[int, int], _Resolution]] = {}
        # Finer still, when the objects offer `rbac_subject_version` and `rbac_role_version`: a namespace's
        # resolution for a user depends only on the RoleBindings with a subject matching the user and the
        # Roles those reference, so writes of other bindings (a proxy runner's) leave it valid.
        subject_version = getattr(objects, "rbac_subject_version", None)
        role_version = getattr(objects, "rbac_role_version", None)
        self._fine: tuple[Callable[[str, tuple[str, str]], int], Callable[[str, str], int]] | None = (
            (subject_version, role_version) if callable(subject_version) and callable(role_version) else None
        )
        # (user, namespace) -> (cluster version, Roles read, fine token, the resolution)
        self._fine_cache: dict[
            tuple[UserInfo, str], tuple[int, tuple[str, ...], tuple[int, ...], _Resolution]
        ] = {}
        self._lookup: tuple[int, _RoleLookup] = (-1, _RoleLookup(objects))
        # Request attributes (the name only when a rule names resources) -> (the resolution the decision
        # was made from, the allowing grant): valid while that resolution is the current one.
        self._decisions: OrderedDict[tuple[Any, ...], tuple[_Resolution, _Grant | None]] = OrderedDict()
        # (rules held, rules granted) -> the broken-down granted rules no held rule covers (pure function).
        self._missing: OrderedDict[tuple[tuple[_Rule, ...], tuple[_Rule, ...]], tuple[_Rule, ...]] = (
            OrderedDict()
        )

    # -- request authorization --

    def authorize(self, attrs: RequestAttributes) -> bool:
        """Whether the request is allowed."""
        if MASTERS_GROUP in attrs.user.groups:
            return True
        return self._allowed_by(attrs)[1] is not None

    def decide(self, attrs: RequestAttributes) -> Decision:
        """The decision with kube-apiserver's reason (`RBAC: allowed by ClusterRoleBinding "x" of ...`).

        A denial's reason lists the bindings that could not be resolved (`RBAC: role.rbac... "x" not found`).
        """
        if MASTERS_GROUP in attrs.user.groups:
            return Decision(True)
        resolution, grant = self._allowed_by(attrs)
        if grant is not None:
            return Decision(True, f"RBAC: allowed by {grant.source}")
        return Decision(False, f"RBAC: {_aggregate(resolution.errors)}" if resolution.errors else "")

    def _allowed_by(self, attrs: RequestAttributes) -> tuple[_Resolution, _Grant | None]:
        """The user's resolution and the first grant with a rule allowing the request (None: denied)."""
        # Non-resource URLs are cluster-wide: RoleBindings never grant them.
        namespace = attrs.namespace if attrs.is_resource_request else ""
        resolution = self._resolution(attrs.user, namespace)
        key = (
            attrs.user,
            namespace,
            attrs.verb,
            attrs.api_group,
            attrs.resource,
            attrs.subresource,
            attrs.name if resolution.named else "",
            attrs.path,
        )
        hit = self._decisions.get(key)
        if hit is not None and hit[0] is resolution:
            return hit
        found = (
            resolution,
            next((g for g in resolution.grants if any(r.allows(attrs) for r in g.rules)), None),
        )
        _remember(self._decisions, key, found)
        return found

    def forbidden_message(self, attrs: RequestAttributes) -> str:
        """The `message` of the 403 for a denied request, worded as kube-apiserver's.

        `deployments.apps "x" is forbidden: User "u" cannot get resource "deployments" in API group "apps"
        in the namespace "ns"`; `forbidden: User "u" cannot get path "/x"` for non-resource URLs.
        """
        user = _go_quote(attrs.user.name)
        if not attrs.is_resource_request:
            text = f"User {user} cannot {attrs.verb} path {_go_quote(attrs.path)}"
        else:
            resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
            where = (
                f"in the namespace {_go_quote(attrs.namespace)}"
                if attrs.namespace
                else "at the cluster scope"
            )
            text = (
                f"User {user} cannot {attrs.verb} resource {_go_quote(resource)} "
                f"in API group {_go_quote(attrs.api_group)} {where}"
            )
        # kube-apiserver escapes &, < and > so the text never looks like HTML (the reason is not escaped).
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        reason = self.decide(attrs).reason
        if reason and not reason.startswith("RBAC: allowed"):
            text = f"{text}: {reason}"
        if not attrs.is_resource_request:
            return f"forbidden: {text}"
        qualified = _qualified(attrs.resource, attrs.api_group)
        if attrs.name:
            return f"{qualified} {_go_quote(attrs.name)} is forbidden: {text}"
        return f"{qualified} is forbidden: {text}"

    def forbidden_status(self, attrs: RequestAttributes) -> dict[str, Any]:
        """The whole 403 `Status` body for a denied request (details name/group/kind as kube-apiserver)."""
        return Denial(
            code=403,
            reason="Forbidden",
            message=self.forbidden_message(attrs),
            name=attrs.name,
            group=attrs.api_group,
            kind=attrs.resource,
        ).status()

    # -- escalation prevention --

    def check_escalation(
        self,
        user: UserInfo,
        obj: Mapping[str, Any],
        *,
        old: Mapping[str, Any] | None = None,
        request_name: str | None = None,
    ) -> str | None:
        """None if `user` may write `obj` (a Role, ClusterRole, RoleBinding or ClusterRoleBinding), else why.

        The text is the message of the Status the server must answer with; `review_escalation` gives the
        whole Status, whose code is 403 except for a binding to a missing role without `bind` (404, as in
        Kubernetes). Pass `old` on update (None means create): see `review_escalation`.
        """
        denial = self.review_escalation(user, obj, old=old, request_name=request_name)
        return None if denial is None else denial.message

    def review_escalation(
        self,
        user: UserInfo,
        obj: Mapping[str, Any],
        *,
        old: Mapping[str, Any] | None = None,
        request_name: str | None = None,
    ) -> Denial | None:
        """The rbac registry's checks on creating (`old` None) or updating (`old` = stored) RBAC objects.

        - `system:masters` may write anything.
        - Role/ClusterRole: allowed with the `escalate` verb on roles/clusterroles, checked against the name
          in the request URL (`request_name`; by default the object's name on update and none on create, so
          `escalate` limited by resourceNames never allows a POST create; pass the URL name for a
          server-side apply that creates), or if the user already holds every rule in the role's namespace
          (cluster-wide for a ClusterRole). An `aggregationRule` (set, or on the old object) additionally
          needs cluster-admin's rules.
        - RoleBinding/ClusterRoleBinding: allowed with `bind` on the referenced roles/clusterroles (by its
          name, in the binding's namespace), else the referenced role must exist (404 otherwise) and the
          user must hold all its rules in the binding's namespace.
        - An update that changes only finalizers or ownerReferences (plus server-managed metadata) is
          always allowed, so garbage collection and finalizer removal never get stuck.
        `obj` must carry `kind` and, for namespaced kinds, `metadata.namespace` (set it from the URL first).
        """
        kind = obj.get("kind")
        if kind not in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            raise ValueError(f"kind: expected an RBAC kind, got {kind!r}")
        if MASTERS_GROUP in user.groups:
            return None
        meta = _meta(obj)
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "") if kind in ("Role", "RoleBinding") else ""
        resource = kind.lower() + "s"
        if kind in ("Role", "ClusterRole"):
            escalate = RequestAttributes(
                user,
                "escalate",
                RBAC_GROUP,
                resource,
                namespace=namespace,
                name=request_name if request_name is not None else (name if old is not None else ""),
            )
            if self.authorize(escalate):
                return None
            if old is not None and _only_gc_fields_change(obj, old):
                return None
            denial = self._confirm_no_escalation(user, namespace, _parse_rules(obj), resource, name)
            if denial is not None:
                return denial
            aggregates = _has_aggregation(obj) or (old is not None and _has_aggregation(old))
            if (
                kind == "ClusterRole"
                and aggregates
                and self._confirm_no_escalation(user, namespace, _FULL_AUTHORITY, resource, name)
            ):
                return _forbidden(
                    resource, name, "must have cluster-admin privileges to use the aggregationRule"
                )
            return None
        if old is not None and _only_gc_fields_change(obj, old):
            return None
        ref_group, ref_kind, ref_name = _role_ref(obj)
        if ref_kind not in ("Role", "ClusterRole"):
            # Kubernetes checks escalation before validation; an unknown kind fails rule resolution.
            return Denial(
                500,
                "InternalError",
                f"Internal error occurred: unsupported role reference kind: {_go_quote(ref_kind)}",
            )
        ref_resource = ref_kind.lower() + "s"
        bind = RequestAttributes(user, "bind", ref_group, ref_resource, namespace=namespace, name=ref_name)
        if self.authorize(bind):
            return None
        role_rules = self._role_lookup(namespace).rules(
            ref_kind, ref_name, namespace
        )  # parsed once per version
        if role_rules is None:
            return Denial(
                404,
                "NotFound",
                f"{_qualified(ref_resource, RBAC_GROUP)} {_go_quote(ref_name)} not found",
                name=ref_name,
                group=RBAC_GROUP,
                kind=ref_resource,
            )
        return self._confirm_no_escalation(user, namespace, role_rules, resource, name)

    def _confirm_no_escalation(
        self, user: UserInfo, namespace: str, rules: Iterable[_Rule], resource: str, name: str
    ) -> Denial | None:
        resolution = self._resolution(user, namespace)
        owned = resolution.rules()
        key = (owned, tuple(rules))
        missing = self._missing.get(key)
        if missing is None:
            missing = tuple(
                sub for rule in key[1] for sub in rule.breakdown() if not any(o.covers(sub) for o in owned)
            )
            _remember(self._missing, key, missing)
        if not missing:
            return None
        descriptions = sorted({rule.compact_string() for rule in _compact(missing)})
        text = (
            f"user {_go_quote(user.name)} (groups={_go_quote_list(user.groups)}) is attempting to grant RBAC "
            "permissions not currently held:\n" + "\n".join(descriptions)
        )
        if resolution.errors:
            text += f"; resolution errors: [{_aggregate(resolution.registry_errors)}]"
        return _forbidden(resource, name, text)

    # -- SelfSubjectRulesReview --

    def rules_review(self, user: UserInfo, namespace: str) -> dict[str, Any]:
        """The `status` of a SelfSubjectRulesReview: the user's rules in `namespace` (cluster-wide ones too).

        Rules are listed per binding, unmerged, as kube-apiserver does; bindings whose role is missing are
        reported in `evaluationError`. `system:masters` sees what is bound to it (cluster-admin by default).
        """
        resolution = self._resolution(user, namespace)
        resource_rules: list[dict[str, Any]] = []
        non_resource_rules: list[dict[str, Any]] = []
        for rule in resolution.rules():
            if rule.resources:
                entry: dict[str, Any] = {"verbs": list(rule.verbs)}
                if rule.api_groups:
                    entry["apiGroups"] = list(rule.api_groups)
                entry["resources"] = list(rule.resources)
                if rule.resource_names:
                    entry["resourceNames"] = list(rule.resource_names)
                resource_rules.append(entry)
            if rule.non_resource_urls:
                non_resource_rules.append(
                    {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)}
                )
        status: dict[str, Any] = {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        }
        if resolution.errors:
            status["evaluationError"] = _aggregate(resolution.errors)
        return status

    # -- resolution and its cache --

    def _fine_token(self, user: UserInfo, namespace: str, roles: tuple[str, ...]) -> tuple[int, ...]:
        assert self._fine is not None
        subject_version, role_version = self._fine
        return (
            *(subject_version(namespace, key) for key in _user_keys(user)),
            *(role_version(namespace, role) for role in roles),
        )

    def _resolution(self, user: UserInfo, namespace: str) -> _Resolution:
        versions = self._versions
        if versions is None:
            return self._resolve(user, namespace, _RoleLookup(self._objects))
        if self._fine is not None:
            cluster = versions(namespace)[0]
            key = (user, namespace)
            fine = self._fine_cache.get(key)
            if (
                fine is not None
                and fine[0] == cluster
                and self._fine_token(user, namespace, fine[1]) == fine[2]
            ):
                return fine[3]
            before = versions(namespace)
            roles: list[str] = []
            resolution = self._resolve(user, namespace, self._role_lookup(namespace), roles_read=roles)
            if versions(namespace) == before:  # nothing was written while resolving
                if len(self._fine_cache) >= _CACHE_LIMIT:
                    self._fine_cache.clear()
                read = tuple(roles)
                self._fine_cache[key] = (before[0], read, self._fine_token(user, namespace, read), resolution)
            return resolution
        before = versions(namespace)
        key = (user, namespace)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == before:
            return hit[1]
        resolution = self._resolve(user, namespace, self._role_lookup(namespace))
        # Cache only what was computed against unchanged versions: a write racing with this
        # resolution must not leave a stale entry behind.
        if versions(namespace) == before:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (before, resolution)
        return resolution

    def _role_lookup(self, namespace: str) -> _RoleLookup:
        """The roles as stored now: a lookup kept for the current cluster-scoped version (it relists a
        namespace's Roles when that namespace's version moved), or a fresh one without versions."""
        versions = self._versions
        if versions is None:
            return _RoleLookup(self._objects)
        cluster = versions(namespace)[0]
        lookup = self._lookup
        if lookup[0] != cluster:
            lookup = self._lookup = (
                cluster,
                _RoleLookup(self._objects, namespace_token=lambda ns: versions(ns)[1]),
            )
        return lookup[1]

    def _resolve(
        self, user: UserInfo, namespace: str, roles: _RoleLookup, *, roles_read: list[str] | None = None
    ) -> _Resolution:
        """VisitRulesFor: ClusterRoleBindings first, then the namespace's RoleBindings. `roles_read` gets
        the names of the namespace's Roles the resolution looked up (found or not)."""
        grants: list[_Grant] = []
        failures: list[tuple[str, str]] = []
        bindings: list[tuple[str, Mapping[str, Any]]] = [
            ("ClusterRoleBinding", b) for b in self._objects.rbac_objects("ClusterRoleBinding")
        ]
        if namespace:
            bindings += [("RoleBinding", b) for b in self._objects.rbac_objects("RoleBinding", namespace)]
        for binding_kind, binding in bindings:
            binding_namespace = namespace if binding_kind == "RoleBinding" else ""
            subject = next(
                (
                    s
                    for s in binding.get("subjects") or ()
                    if isinstance(s, Mapping) and _subject_applies(user, s, binding_namespace)
                ),
                None,
            )
            if subject is None:
                continue
            _, ref_kind, ref_name = _role_ref(binding)
            if ref_kind not in ("Role", "ClusterRole"):
                failures.append((ref_kind, ref_name))
                continue
            if ref_kind == "Role" and roles_read is not None:
                roles_read.append(ref_name)
            rules = roles.rules(ref_kind, ref_name, binding_namespace)
            if rules is None:
                failures.append((ref_kind, ref_name))
                continue
            binding_name = str(_meta(binding).get("name") or "")
            label = binding_name if binding_kind == "ClusterRoleBinding" else f"{binding_name}/{namespace}"
            source = (
                f"{binding_kind} {_go_quote(label)} of {ref_kind} {_go_quote(ref_name)} "
                f"to {_describe_subject(subject, binding_namespace)}"
            )
            grants.append(_Grant(source, rules))
        return _Resolution(tuple(grants), tuple(failures))


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    """Insert into a bounded cache, forgetting the oldest entry when full (an OrderedDict: evicting the
    first key of a plain dict scans the slots of every earlier eviction)."""
    if len(cache) >= _DECISION_LIMIT:
        cache.popitem(last=False)
    cache[key] = value


def _forbidden(resource: str, name: str, text: str) -> Denial:
    qualified = _qualified(resource, RBAC_GROUP)
    message = (
        f"{qualified} {_go_quote(name)} is forbidden: {text}" if name else f"{qualified} is forbidden: {text}"
    )
    return Denial(403, "Forbidden", message, name=name, group=RBAC_GROUP, kind=resource)


def _has_aggregation(obj: Mapping[str, Any]) -> bool:
    rule = obj.get("aggregationRule")
    return isinstance(rule, Mapping) and bool(rule.get("clusterRoleSelectors"))


# Metadata the garbage collector may change, plus what the server itself maintains on every write.
_GC_AND_SERVER_FIELDS: Final = frozenset(
    {
        "ownerReferences",
        "finalizers",
        "selfLink",
        "resourceVersion",
        "managedFields",
        "generation",
        "uid",
        "creationTimestamp",
    }
)


def _only_gc_fields_change(obj: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """IsOnlyMutatingGCFields, ignoring server-managed metadata as well."""

    def stripped(o: Mapping[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in o.items() if k not in ("metadata", "apiVersion", "kind")}
        body["metadata"] = {k: v for k, v in _meta(o).items() if k not in _GC_AND_SERVER_FIELDS}
        return body

    return stripped(obj) == stripped(old)


# --- ClusterRole aggregation -------------------------------------------------------------------------------


def _selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool | None:
    """A metav1.LabelSelector against labels; None when the selector is invalid (it then selects nothing)."""
    if not isinstance(selector, Mapping):
        return None
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return None
    matched = all(labels.get(key) == value for key, value in match_labels.items())
    for expression in expressions:
        if not isinstance(expression, Mapping):
            return None
        key = str(expression.get("key") or "")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator in ("In", "NotIn") and not values:
            return None
        if operator in ("Exists", "DoesNotExist") and values:
            return None
        if operator == "In":
            matched = matched and key in labels and labels[key] in values
        elif operator == "NotIn":
            matched = matched and (key not in labels or labels[key] not in values)
        elif operator == "Exists":
            matched = matched and key in labels
        elif operator == "DoesNotExist":
            matched = matched and key not in labels
        else:
            return None
    return matched


def _gather(
    name: str,
    aggregation: Any,
    roles: Mapping[str, Mapping[str, Any]],
    rules: Mapping[str, tuple[_Rule, ...]],
) -> tuple[_Rule, ...] | None:
    """One controller sync of role `name`: None if it has no aggregationRule or an invalid selector."""
    if not isinstance(aggregation, Mapping):
        return None
    gathered: list[_Rule] = []
    for selector in aggregation.get("clusterRoleSelectors") or []:
        for other in sorted(roles):
            labels = _meta(roles[other]).get("labels")
            matched = _selector_matches(selector, labels if isinstance(labels, Mapping) else {})
            if matched is None:
                return None
            if matched and other != name:
                gathered.extend(rule for rule in rules[other] if rule not in gathered)
    return tuple(gathered)


def aggregate_cluster_roles(cluster_roles: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The `rules` the clusterrole-aggregation controller gives each ClusterRole that has an aggregationRule.

    For every selector in order, the matching ClusterRoles (sorted by name, never the role itself) contribute
    their rules, each rule once. Aggregated roles that select other aggregated roles are iterated until
    stable, as the controller converges. A role with an invalid selector is left out (the controller keeps
    retrying and never changes it). The server writes a role's entry back when it differs from `rules`.
    """
    current: dict[str, Mapping[str, Any]] = {
        str(_meta(role).get("name") or ""): role for role in cluster_roles
    }
    rules: dict[str, tuple[_Rule, ...]] = {name: _parse_rules(role) for name, role in current.items()}
    aggregated: dict[str, tuple[_Rule, ...]] = {}
    for _ in range(len(current) + 1):
        previous = dict(aggregated)
        for name, role in current.items():
            gathered = _gather(name, role.get("aggregationRule"), current, rules)
            if gathered is not None:
                rules[name] = aggregated[name] = gathered
        if aggregated == previous:
            break
    return {name: [rule.to_dict() for rule in result] for name, result in aggregated.items()}


# --- Default policy ----------------------------------------------------------------------------------------


def _bootstrap_meta(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _bootstrap_meta(name),
        "rules": rules,
    }


def _cluster_role_binding(name: str, groups: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _bootstrap_meta(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups],
    }


def bootstrap_objects() -> list[dict[str, Any]]:
    """The default ClusterRoles and ClusterRoleBindings kube-apiserver creates that every cluster relies on.

    cluster-admin (bound to system:masters), system:discovery and system:basic-user (bound to
    system:authenticated), system:public-info-viewer (bound to system:authenticated and
    system:unauthenticated), with the rules of current Kubernetes bootstrap policy. Fresh dicts each call.
    """
    return [
        _cluster_role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _cluster_role(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        _cluster_role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"],
                    "verbs": ["create"],
                },
            ],
        ),
        _cluster_role(
            "system:public-info-viewer",
            [
                {
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }
            ],
        ),
        _cluster_role_binding("cluster-admin", [MASTERS_GROUP]),
        _cluster_role_binding("system:discovery", [AUTHENTICATED_GROUP]),
        _cluster_role_binding("system:basic-user", [AUTHENTICATED_GROUP]),
        _cluster_role_binding("system:public-info-viewer", [AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP]),
    ]

"""Selection policy: which namespaces are members, and why, as an ordered chain of named predicates.

Pure: no I/O, no clock, no logging. The controller builds one `SelectorPolicy` per spec generation and
calls `decide_all` on the namespaces it observed; the `Decision` reasons are used verbatim in logs, span
attributes, conditions and published status. Rule: `members = (matching any selector | static list) - deny
list - protected - terminating`; a static namespace is a member only once it exists.

Two choices, both fail-closed (the reference survey shows OLM, Istio and prometheus-operator reading an
empty or malformed selector as "all namespaces", which here would hand the grantee's ClusterRole to every
namespace):

- An empty selector (`{}`) is refused: it selects nothing and is reported as invalid, although Kubernetes
  reads it as "everything". Whoever really means every namespace writes so explicitly:
  `matchExpressions: [{key: kubernetes.io/metadata.name, operator: Exists}]`.
- An invalid selector selects nothing; the other selectors and the static list still apply. Selectors are
  ORed, so dropping one whole selector can only shrink the member set (never widen it, unlike dropping a
  single bad requirement, which would loosen the selector); failing every selector instead would revoke every
  team because of one typo in a new entry, with no safety gained.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from discovery import models
from discovery import selectors as label_selectors


class Reason(enum.StrEnum):
    """Why a namespace is, or is not, a member. Values are CamelCase, as in Kubernetes condition reasons."""

    PROTECTED = "Protected"
    TERMINATING = "Terminating"
    DENIED = "Denied"
    NOT_FOUND = "NotFound"
    STATIC_LIST = "StaticList"
    SELECTOR_MATCHED = "SelectorMatched"
    INVALID_SELECTOR = "InvalidSelector"
    NOT_SELECTED = "NotSelected"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one namespace: member or not, the reason, and a sentence for humans."""

    member: bool
    reason: Reason
    message: str


@dataclasses.dataclass(frozen=True)
class NamespaceInfo:
    """What the policy needs to know about a namespace. `exists=False` stands for a static name not found."""

    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    terminating: bool = False
    exists: bool = True
    finalizers_remaining: frozenset[str] = frozenset()
    """While terminating: the finalizers the namespace controller reports as still holding content."""

    @classmethod
    def from_manifest(cls, namespace: Mapping[str, Any]) -> NamespaceInfo:
        """From a Namespace object: terminating means a deletionTimestamp or `status.phase: Terminating`."""
        metadata = namespace.get("metadata") or {}
        status = namespace.get("status") or {}
        labels = metadata.get("labels") or {}
        return cls(
            name=str(metadata.get("name", "")),
            labels={str(key): str(value) for key, value in labels.items()},
            terminating=bool(metadata.get("deletionTimestamp")) or status.get("phase") == "Terminating",
            finalizers_remaining=remaining_finalizers(status),
        )


_FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"


def remaining_finalizers(status: Mapping[str, Any]) -> frozenset[str]:
    """Finalizers named by the namespace controller's `NamespaceFinalizersRemaining` condition.

    Its message reads `Some content in the namespace has finalizers remaining: a/b in 1 resource instances,
    c/d in 2 resource instances`. Anything else (no condition, status False, another wording) is empty.
    """
    for condition in status.get("conditions") or []:
        if not isinstance(condition, Mapping) or condition.get("type") != _FINALIZERS_REMAINING:
            continue
        if condition.get("status") != "True":
            return frozenset()
        _, _, listed = str(condition.get("message", "")).partition(": ")
        return frozenset(item.split(" in ", 1)[0].strip() for item in listed.split(", ") if " in " in item)
    return frozenset()


@dataclasses.dataclass(frozen=True)
class SelectorPolicy:
    """One spec, compiled: parsed selectors (valid or not), static, deny and protected name sets."""

    selectors: tuple[label_selectors.ParsedSelector, ...] = ()
    static: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    protected: frozenset[str] = frozenset(models.DEFAULT_DENY_NAMESPACES)

    @classmethod
    def from_spec(
        cls,
        spec: models.NamespaceDiscoverySpec,
        *,
        protected: Iterable[str] = models.DEFAULT_DENY_NAMESPACES,
    ) -> SelectorPolicy:
        """Compile a parsed spec. `protected` comes from settings, never from the custom resource."""
        raw = [selector.model_dump(by_alias=True, exclude_defaults=True) for selector in spec.selectors]
        return cls(
            selectors=label_selectors.parse_selectors(raw),
            static=frozenset(spec.namespaces),
            denied=frozenset(spec.deny_namespaces),
            protected=frozenset(protected),
        )

    @property
    def valid_selectors(self) -> tuple[label_selectors.Selector, ...]:
        return tuple(item for item in self.selectors if isinstance(item, label_selectors.Selector))

    @property
    def invalid_selectors(self) -> tuple[label_selectors.InvalidSelector, ...]:
        return tuple(item for item in self.selectors if isinstance(item, label_selectors.InvalidSelector))

    def decide(self, namespace: NamespaceInfo) -> Decision:
        return decide(namespace, self)

    def decide_all(self, namespaces: Iterable[NamespaceInfo]) -> dict[str, Decision]:
        return decide_all(namespaces, self)


Predicate = Callable[[NamespaceInfo, SelectorPolicy], Decision | None]


def is_protected(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    if namespace.name in policy.protected:
        return Decision(False, Reason.PROTECTED, "protected namespace: never a member, whatever its labels")
    return None


def is_terminating(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    if namespace.terminating:
        return Decision(False, Reason.TERMINATING, "namespace is being deleted")
    return None


def is_denied(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    if namespace.name in policy.denied:
        return Decision(False, Reason.DENIED, "listed in spec.denyNamespaces")
    return None


def is_missing(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    if not namespace.exists:
        return Decision(False, Reason.NOT_FOUND, "listed in spec.namespaces but does not exist (yet)")
    return None


def is_static(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    if namespace.name in policy.static:
        return Decision(True, Reason.STATIC_LIST, "listed in spec.namespaces")
    return None


def matches_selector(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision | None:
    """The first valid selector that matches decides; an invalid one never matches (fail closed)."""
    for selector in policy.valid_selectors:
        if selector.matches(namespace.labels):
            return Decision(True, Reason.SELECTOR_MATCHED, f"matched selector {selector.index} ({selector})")
    invalid = policy.invalid_selectors
    if invalid:
        indexes = ", ".join(str(item.index) for item in invalid)
        noun = "selector" if len(invalid) == 1 else "selectors"
        return Decision(
            False,
            Reason.INVALID_SELECTOR,
            f"matched no valid selector; invalid {noun} {indexes} select nothing (see SelectorsValid)",
        )
    return None


# Order matters: exclusions first, so nothing can select a protected, terminating or denied namespace.
CHAIN: tuple[Predicate, ...] = (
    is_protected,  # settings' protected names beat everything, even an edited deny list
    is_terminating,  # a namespace being deleted only ever leaves (its grant drains)
    is_denied,  # spec.denyNamespaces beats the static list and the selectors
    is_missing,  # a static name that does not exist is not a member, and gets no grant
    is_static,  # spec.namespaces: member whatever the labels
    matches_selector,  # any valid selector, ORed
)


def decide(namespace: NamespaceInfo, policy: SelectorPolicy) -> Decision:
    """Run the chain; the first predicate with an opinion decides, else the namespace is not selected."""
    for predicate in CHAIN:
        decision = predicate(namespace, policy)
        if decision is not None:
            return decision
    if policy.selectors:
        return Decision(False, Reason.NOT_SELECTED, f"matched none of {len(policy.selectors)} selectors")
    return Decision(False, Reason.NOT_SELECTED, "not in spec.namespaces, and no selectors are configured")


def decide_all(namespaces: Iterable[NamespaceInfo], policy: SelectorPolicy) -> dict[str, Decision]:
    """Decisions for every observed namespace and every static name, keyed and sorted by name.

    Static names that were not observed are decided as not existing (`NotFound` unless protected or denied).
    """
    observed = {namespace.name: namespace for namespace in namespaces}
    for name in policy.static - observed.keys():
        observed[name] = NamespaceInfo(name, exists=False)
    return {name: decide(observed[name], policy) for name in sorted(observed)}


def members_of(decisions: Mapping[str, Decision]) -> frozenset[str]:
    return frozenset(name for name, decision in decisions.items() if decision.member)

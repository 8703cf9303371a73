"""Generic label-driven namespace discovery: select namespaces, grant a ClusterRole there, revoke on leave.

The front door: every public name is imported explicitly below and listed in `__all__` (sorted). The pure core
is `selectors` (LabelSelectors), `policy` (who is a member, and why), `membership` (lifecycle and plan) and
`bindings` (the grant's manifest); none of them does I/O. The I/O half is `controller` (watch and converge,
behind `run`) and `grants` (the only writer). Nothing here names the grantee's application: label
keys, the ClusterRole and the subject arrive as settings.
"""

from discovery.bindings import GrantTemplate, build_grant
from discovery.config import Config, discovery_resource
from discovery.controller import run
from discovery.membership import (
    Action,
    ActionKind,
    Conflict,
    Membership,
    Observed,
    Phase,
    Plan,
    build_status,
    decide_plan,
)
from discovery.models import LabelSelector, NamespaceDiscoverySpec, NamespaceDiscoveryStatus
from discovery.policy import Decision, NamespaceInfo, Reason, SelectorPolicy, decide, decide_all
from discovery.selectors import (
    InvalidSelector,
    Operator,
    Requirement,
    Selector,
    parse_selector,
    parse_selectors,
)

__all__ = [
    "Action",
    "ActionKind",
    "Config",
    "Conflict",
    "Decision",
    "GrantTemplate",
    "InvalidSelector",
    "LabelSelector",
    "Membership",
    "NamespaceDiscoverySpec",
    "NamespaceDiscoveryStatus",
    "NamespaceInfo",
    "Observed",
    "Operator",
    "Phase",
    "Plan",
    "Reason",
    "Requirement",
    "Selector",
    "SelectorPolicy",
    "build_grant",
    "build_status",
    "decide",
    "decide_all",
    "decide_plan",
    "discovery_resource",
    "parse_selector",
    "parse_selectors",
    "run",
]

"""Pure desired-state builders, one module per kind. No I/O, clock, environment or logging.

The front door for the reconciler: `build_all(server, config=...)` returns every owned object in apply
order (grouped for concurrent applying by `waves()`) plus the status URL and the stdio replica cap.
Per-kind builders live in their modules (`serviceaccount`, `rbac`, `runconfig`, `podpatch`, `deployment`,
`service`, `status`); names come from `toolhive.names`.
"""

from toolhive.builders.assemble import KIND_RANK, WAVES, Desired, build_all
from toolhive.builders.inputs import BuildConfig, Manifest, Server
from toolhive.builders.meta import owner_reference

__all__ = [
    "KIND_RANK",
    "WAVES",
    "BuildConfig",
    "Desired",
    "Manifest",
    "Server",
    "build_all",
    "owner_reference",
]

"""The operator's few named errors.

Pure: no I/O. `InvalidSpec` is raised or returned by `toolhive.api.validation` and turned by the reconciler
into `phase: Failed` plus a condition naming the field; it is never retried, because only a new spec can
fix it. Everything else (API errors, timeouts) is transient and lives with the client, not here.
"""

from __future__ import annotations


class ToolhiveError(Exception):
    """Base class of the errors this package defines."""


class InvalidSpec(ToolhiveError):
    """One rule that an MCPServer breaks, named by its field path.

    `field_path` uses the manifest's spelling (`spec.secrets[0].targetEnvName`, camelCase, list indices
    in brackets); `message` states the rule (`must be <= 65535`). `str()` gives `"<path>: <message>"`,
    the form used verbatim in conditions, events and logs.
    """

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(field_path, message)
        self.field_path = field_path
        self.message = message

    def __str__(self) -> str:
        return f"{self.field_path}: {self.message}"

    def __repr__(self) -> str:
        return f"InvalidSpec({self.field_path!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InvalidSpec):
            return NotImplemented
        return (self.field_path, self.message) == (other.field_path, other.message)

    def __hash__(self) -> int:
        return hash((self.field_path, self.message))

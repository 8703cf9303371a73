"""The operator's own validation of MCPServers, and translation of pydantic errors into field paths.

Pure: no I/O. The reconciler calls `check(body)` on every watched MCPServer before building anything;
any problem means `phase: Failed` with a condition naming the field, and nothing is created or changed.
Rules here are the ones the API server's schema cannot express or that ToolHive only discovers at run
time (a bad quantity, a pod template that does not parse, a sidecar without an image): catching them
before we build keeps the error next to the field instead of in a failing Deployment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pydantic

from toolhive import errors
from toolhive.api import models

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

POD_TEMPLATE_PATH: Final = "spec.podTemplateSpec"
# `spec.args` travel in the RunConfig ConfigMap (1 MiB for all its data) and end up as the MCP container's
# argv: Linux refuses a single argument over MAX_ARG_STRLEN (128 KiB) at exec, and the whole argv and
# environment share ARG_MAX. The API server only stops a request at 3 MiB, so without this bound a huge
# list is accepted, then fails at apply (ConfigMap too long) or at exec, far from the field.
MAX_ARG_BYTES: Final = 128 * 1024
MAX_ARGS_TOTAL_BYTES: Final = 256 * 1024


@dataclasses.dataclass(frozen=True)
class Checked:
    """Outcome of `check`: the parsed server (None when it does not parse), its problems, and the
    accepted-but-unimplemented fields it uses (manifest names, sorted)."""

    server: models.MCPServer | None
    problems: tuple[errors.InvalidSpec, ...]
    unsupported: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.server is not None and not self.problems

    @property
    def pod_template_problems(self) -> tuple[errors.InvalidSpec, ...]:
        """The problems that make ToolHive's `PodTemplateValid` condition False."""
        return tuple(p for p in self.problems if p.field_path.startswith(POD_TEMPLATE_PATH))


def check(body: Mapping[str, Any]) -> Checked:
    """Parse an MCPServer body (as read from the API) and validate it.

    Never raises for bad input. `status` is parsed leniently and separately: a status we cannot read
    (written by someone else) is dropped, never a reason to fail the spec.
    """
    without_status = {key: value for key, value in body.items() if key != "status"}
    try:
        server = models.MCPServer.model_validate(without_status)
    except pydantic.ValidationError as exc:
        return Checked(server=None, problems=tuple(from_pydantic(exc)), unsupported=())
    status = body.get("status")
    if status is not None:
        with contextlib.suppress(pydantic.ValidationError):
            server = server.model_copy(update={"status": models.MCPServerStatus.model_validate(status)})
    return Checked(
        server=server,
        problems=tuple(validate(server)),
        unsupported=tuple(models.unsupported_fields(server.spec)),
    )


MAX_NAME_LENGTH: Final = 50
"""The proxy runner names the backend Services `mcp-<name>-headless` and `mcp-<name>` and the StatefulSet
whose pods carry `<name>-<revision hash>` labels; all must fit 63 characters, which a longer name breaks
on a real cluster long after the operator reported success."""


def validate(server: models.MCPServer) -> list[errors.InvalidSpec]:
    """The rules beyond the schema: fail-closed fields first, then by field. Empty: the spec can be built."""
    spec = server.spec
    problems: list[errors.InvalidSpec] = []
    if len(server.name) > MAX_NAME_LENGTH:
        problems.append(
            errors.InvalidSpec(
                "metadata.name",
                f"must be no more than {MAX_NAME_LENGTH} characters: the proxy runner names its Services "
                "mcp-<name>-headless and its StatefulSet's pods after the server, which must fit 63",
            )
        )
    problems += _fail_closed(spec)
    problems += _args_problems(spec.args)
    for index, volume in enumerate(spec.volumes):
        path = f"spec.volumes[{index}]"
        problems += _name(f"{path}.name", volume.name, _DNS_LABEL, 63, "a DNS-1123 label")
        for field, value in (("hostPath", volume.host_path), ("mountPath", volume.mount_path)):
            if not value.startswith("/"):
                problems.append(errors.InvalidSpec(f"{path}.{field}", "must be an absolute path"))
    if spec.resources is not None:
        for kind, amounts in (("limits", spec.resources.limits), ("requests", spec.resources.requests)):
            for field in ("cpu", "memory"):
                amount: str | None = getattr(amounts, field) if amounts is not None else None
                if amount is not None and not _QUANTITY.match(amount):
                    problems.append(
                        errors.InvalidSpec(
                            f"spec.resources.{kind}.{field}",
                            f"must be a Kubernetes quantity such as 500m, 1, 64Mi (got {amount!r})",
                        )
                    )
    for index, secret in enumerate(spec.secrets):
        path = f"spec.secrets[{index}]"
        problems += _name(f"{path}.name", secret.name, _DNS_SUBDOMAIN, 253, "a DNS-1123 subdomain")
        if not _SECRET_KEY.match(secret.key) or len(secret.key) > 253:
            problems.append(
                errors.InvalidSpec(f"{path}.key", "must consist of alphanumerics, '-', '_' or '.'")
            )
        if secret.target_env_name == "":
            problems.append(errors.InvalidSpec(f"{path}.targetEnvName", "must not be empty when set"))
    if spec.service_account is not None:
        problems += _name(
            "spec.serviceAccount", spec.service_account, _DNS_SUBDOMAIN, 253, "a DNS-1123 subdomain"
        )
    profile = spec.permission_profile
    if (
        profile is not None
        and profile.type is models.PermissionProfileType.BUILTIN
        and profile.name not in models.BUILTIN_PERMISSION_PROFILES
    ):
        problems.append(
            errors.InvalidSpec(
                "spec.permissionProfile.name", "must be 'none' or 'network' when type is 'builtin'"
            )
        )
    if spec.pod_template_spec is not None:
        problems += pod_template_problems(spec.pod_template_spec)
    overrides = spec.resource_overrides
    if overrides is not None:
        deployment = overrides.proxy_deployment
        if deployment is not None:
            base = "spec.resourceOverrides.proxyDeployment"
            problems += _metadata_problems(base, deployment.labels, deployment.annotations)
            pod = deployment.pod_template_metadata_overrides
            if pod is not None:
                problems += _metadata_problems(
                    f"{base}.podTemplateMetadataOverrides", pod.labels, pod.annotations
                )
        if overrides.proxy_service is not None:
            service = overrides.proxy_service
            problems += _metadata_problems(
                "spec.resourceOverrides.proxyService", service.labels, service.annotations
            )
    return problems


def pod_template_problems(template: Mapping[str, Any]) -> list[errors.InvalidSpec]:
    """ToolHive's `PodTemplateValid`: the template must read as a PodTemplateSpec.

    ToolHive decodes it into a Kubernetes PodTemplateSpec and merges it into the backend pod by container
    name: the container named `mcp` is the MCP server (its image comes from `spec.image`); any other
    container or init container is added as it is, so it needs a name and an image. Unknown keys are
    ignored, as Go's decoder ignores them; the parts we read must have the right types.
    """
    base = POD_TEMPLATE_PATH
    problems: list[errors.InvalidSpec] = []
    metadata = template.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return [errors.InvalidSpec(f"{base}.metadata", "must be an object")]
        for field in ("labels", "annotations"):
            problems += _string_map(f"{base}.metadata.{field}", metadata.get(field))
        if not problems:
            problems += _metadata_problems(
                f"{base}.metadata", metadata.get("labels"), metadata.get("annotations")
            )
    pod = template.get("spec")
    if pod is None:
        return problems
    if not isinstance(pod, dict):
        return [*problems, errors.InvalidSpec(f"{base}.spec", "must be an object")]
    problems += _string_map(f"{base}.spec.nodeSelector", pod.get("nodeSelector"))
    for field in ("serviceAccountName", "priorityClassName"):
        if field in pod and not isinstance(pod[field], str):
            problems.append(errors.InvalidSpec(f"{base}.spec.{field}", "must be a string"))
    for field in ("volumes", "tolerations", "imagePullSecrets"):
        problems += _object_list(f"{base}.spec.{field}", pod.get(field))
    seen: dict[str, str] = {}
    for field in ("initContainers", "containers"):
        items = pod.get(field)
        list_problems = _object_list(f"{base}.spec.{field}", items)
        if list_problems or items is None:
            problems += list_problems
            continue
        for index, container in enumerate(items):
            path = f"{base}.spec.{field}[{index}]"
            name = container.get("name")
            if not isinstance(name, str) or not name:
                problems.append(errors.InvalidSpec(f"{path}.name", "is required"))
                continue
            if name in seen:
                problems.append(errors.InvalidSpec(f"{path}.name", f"duplicates {seen[name]} ({name!r})"))
            seen.setdefault(name, path)
            is_server = field == "containers" and name == models.MCP_CONTAINER
            image = container.get("image")
            if image is not None and not isinstance(image, str):
                problems.append(errors.InvalidSpec(f"{path}.image", "must be a string"))
            elif not is_server and not image:
                problems.append(
                    errors.InvalidSpec(
                        f"{path}.image",
                        f"is required: only the container named {models.MCP_CONTAINER!r} is the MCP server; "
                        "others are added next to it",
                    )
                )
            envs = container.get("env")
            problems += _object_list(f"{path}.env", envs)
            for env_index, env in enumerate(envs if isinstance(envs, list) else ()):
                if isinstance(env, dict) and not isinstance(env.get("name"), str):
                    problems.append(errors.InvalidSpec(f"{path}.env[{env_index}].name", "is required"))
    return problems


def from_pydantic(exc: pydantic.ValidationError) -> list[errors.InvalidSpec]:
    """One `InvalidSpec` per pydantic error: `spec.secrets[0].key: is required` style.

    Paths use the manifest's spelling (pydantic reports the aliases it read); messages state the rule
    in the API server's terms (`must be <= 65535`, `must be one of: ...`, `unknown field`).
    """
    problems = []
    for error in exc.errors(include_url=False):
        problems.append(errors.InvalidSpec(field_path(error["loc"]), _message(error)))
    return _unique(problems)


def field_path(loc: Sequence[int | str]) -> str:
    """`("spec", "secrets", 0, "key")` -> `spec.secrets[0].key`; odd map keys are bracketed."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path or "(root)"


def summarize(problems: Iterable[errors.InvalidSpec]) -> str:
    """All problems on one line, for a condition message or an event: `a: rule; b: rule`."""
    return "; ".join(str(problem) for problem in problems)


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("less_than_equal", "less_than"):
        return f"must be {'<=' if kind == 'less_than_equal' else '<'} {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be {'>=' if kind == 'greater_than_equal' else '>'} {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of: {expected.replace(' or ', ', ')} (got {error.get('input')!r})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("string_type", "str_type"):
        return "must be a string"
    if kind in ("bool_type", "bool_parsing"):
        return "must be a boolean"
    if kind in ("list_type", "tuple_type"):
        return "must be an array"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    message = str(error.get("msg", kind))
    return message[:1].lower() + message[1:]


def _unique(problems: list[errors.InvalidSpec]) -> list[errors.InvalidSpec]:
    return list(dict.fromkeys(problems))


def _fail_closed(spec: models.MCPServerSpec) -> list[errors.InvalidSpec]:
    fields = models.MCPServerSpec.model_fields
    return [
        errors.InvalidSpec(
            f"spec.{fields[name].alias or name}",
            "is not implemented by this operator; the server is not deployed rather than run without "
            "the protection this field asks for",
        )
        for name in sorted(models.FAIL_CLOSED_FIELDS, key=lambda n: fields[n].alias or n)
        if getattr(spec, name) is not None
    ]


def _args_problems(args: Sequence[str]) -> list[errors.InvalidSpec]:
    sizes = [len(arg.encode()) for arg in args]
    problems = [
        errors.InvalidSpec(f"spec.args[{index}]", f"is {size} bytes; at most {MAX_ARG_BYTES} (exec's limit)")
        for index, size in enumerate(sizes)
        if size > MAX_ARG_BYTES
    ]
    if not problems and sum(sizes) > MAX_ARGS_TOTAL_BYTES:
        problems.append(
            errors.InvalidSpec(
                "spec.args",
                f"are {sum(sizes)} bytes in total; at most {MAX_ARGS_TOTAL_BYTES} (they travel in the "
                "RunConfig ConfigMap and the container's argv)",
            )
        )
    return problems


def _name(path: str, value: str, pattern: re.Pattern[str], limit: int, what: str) -> list[errors.InvalidSpec]:
    if len(value) <= limit and pattern.match(value):
        return []
    return [errors.InvalidSpec(path, f"must be {what} (lowercase alphanumerics and '-', at most {limit})")]


def _string_map(path: str, value: Any) -> list[errors.InvalidSpec]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [errors.InvalidSpec(path, "must be an object")]
    return [
        errors.InvalidSpec(f"{path}[{key!r}]", "must be a string")
        for key, item in value.items()
        if not isinstance(item, str)
    ]


def _object_list(path: str, value: Any) -> list[errors.InvalidSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [errors.InvalidSpec(path, "must be an array")]
    return [
        errors.InvalidSpec(f"{path}[{index}]", "must be an object")
        for index, item in enumerate(value)
        if not isinstance(item, dict)
    ]


def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _metadata_problems(
    path: str, labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> list[errors.InvalidSpec]:
    problems = []
    for key, value in (labels or {}).items():
        if not _qualified_name_ok(key):
            problems.append(errors.InvalidSpec(f"{path}.labels[{key!r}]", "is not a valid label key"))
        elif len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(
                errors.InvalidSpec(
                    f"{path}.labels[{key!r}]",
                    "must be a valid label value (at most 63 alphanumerics, '-', '_' or '.')",
                )
            )
    for key in annotations or {}:
        if not _qualified_name_ok(key):
            problems.append(
                errors.InvalidSpec(f"{path}.annotations[{key!r}]", "is not a valid annotation key")
            )
    return problems

"""Per-kind defaulting and validation of built-in objects (the parts of the real strategies we mirror).

Pure: no I/O. Called by the loopback store on every write of a built-in kind: `default(...)` fills
in what the real API server's defaulting fills in (a useful subset), `errors(...)` returns 422
causes. It never runs controllers: Deployments get no ReplicaSets, Pods never run.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from toolhive.testing import _resources, _validation

FieldError = _validation.FieldError
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


class DecodeError(ValueError):
    """A body the real server could not decode into its Go type (answered with 400 BadRequest)."""


_COMMON = frozenset({"apiVersion", "kind", "metadata"})
_SPEC_STATUS = frozenset({"spec", "status"})
TOP_LEVEL: dict[tuple[str, str], frozenset[str]] = {
    ("", "Namespace"): _SPEC_STATUS,
    ("", "ServiceAccount"): frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    ("", "ConfigMap"): frozenset({"data", "binaryData", "immutable"}),
    ("", "Secret"): frozenset({"data", "stringData", "type", "immutable"}),
    ("", "Service"): _SPEC_STATUS,
    ("", "Pod"): _SPEC_STATUS,
    ("", "Event"): frozenset(
        {
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        }
    ),
    ("apps", "Deployment"): _SPEC_STATUS,
    ("apps", "StatefulSet"): _SPEC_STATUS,
    ("rbac.authorization.k8s.io", "Role"): frozenset({"rules"}),
    ("rbac.authorization.k8s.io", "ClusterRole"): frozenset({"rules", "aggregationRule"}),
    ("rbac.authorization.k8s.io", "RoleBinding"): frozenset({"subjects", "roleRef"}),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): frozenset({"subjects", "roleRef"}),
    ("coordination.k8s.io", "Lease"): frozenset({"spec"}),
    ("events.k8s.io", "Event"): frozenset(
        {
            "eventTime",
            "series",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "regarding",
            "related",
            "note",
            "type",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        }
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _SPEC_STATUS,
}
OBJECT_META = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def unknown_fields(rt: _resources.ResourceType, obj: Mapping[str, Any]) -> list[str]:
    """Top-level and metadata fields the Go types do not have (the decoder drops them, or 400 if Strict)."""
    allowed = TOP_LEVEL.get((rt.group, rt.kind))
    out = [] if allowed is None else sorted(k for k in obj if k not in allowed and k not in _COMMON)
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        out.extend(f"metadata.{k}" for k in sorted(meta) if k not in OBJECT_META)
    return out


def _container_defaults(container: dict[str, Any]) -> None:
    image = str(container.get("image") or "")
    if "imagePullPolicy" not in container:
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if spec.get("serviceAccountName") is None and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container_defaults(container)


def default(rt: _resources.ResourceType, obj: dict[str, Any], *, allocate_ip: Any) -> None:
    """Fill in server-side defaults in place (a subset of the real defaulting; see module docstring)."""
    kind = rt.kind
    spec = obj.get("spec")
    if kind == "Namespace":
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", ["kubernetes"])
    elif kind in ("Deployment", "StatefulSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            )
        else:
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _pod_spec_defaults(template["spec"])
    elif kind == "Pod" and isinstance(spec, dict):
        _pod_spec_defaults(spec)
        spec.setdefault("serviceAccountName", "default")
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            if not spec.get("clusterIP"):
                spec["clusterIP"] = allocate_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping):
            data = obj.setdefault("data", {}) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data


_MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
# (kind, group) -> (path, micro?) of timestamp fields: metav1.MicroTime needs exactly six fraction digits.
_TIMESTAMPS: dict[tuple[str, str], tuple[tuple[tuple[str, ...], bool], ...]] = {
    ("Lease", "coordination.k8s.io"): ((("spec", "acquireTime"), True), (("spec", "renewTime"), True)),
    ("Event", "events.k8s.io"): (
        (("eventTime",), True),
        (("deprecatedFirstTimestamp",), False),
        (("deprecatedLastTimestamp",), False),
    ),
    ("Event", ""): ((("eventTime",), True), (("firstTimestamp",), False), (("lastTimestamp",), False)),
}


def _timestamp_errors(rt: _resources.ResourceType, obj: Mapping[str, Any]) -> None:
    for path, micro in _TIMESTAMPS.get((rt.kind, rt.group), ()):
        node: Any = obj
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            continue
        layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
        if not isinstance(node, str) or not (_MICRO_TIME if micro else _TIME).fullmatch(node):
            raise DecodeError(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f'parsing time "{node}" as "{layout}": cannot parse "{node}" as "{layout}"'
            )


def decode_check(rt: _resources.ResourceType, obj: Mapping[str, Any]) -> None:
    """Raise DecodeError for bodies that would not decode into the Go type (a useful subset)."""
    _timestamp_errors(rt, obj)
    if rt.kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                raise DecodeError(f"illegal base64 data in Secret.data[{key!r}]") from None
    if rt.kind in ("Deployment", "StatefulSet") and isinstance(obj.get("spec"), Mapping):
        replicas = obj["spec"].get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
            raise DecodeError(
                f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
                f"{rt.kind}Spec.spec.replicas of type int32"
            )
    for field in ("data", "binaryData") if rt.kind == "ConfigMap" else ():
        value = obj.get(field)
        if value is not None and not isinstance(value, Mapping):
            raise DecodeError(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field ConfigMap.{field}"
            )
        for item in (value or {}).values():
            if not isinstance(item, str):
                raise DecodeError(
                    f"json: cannot unmarshal {type(item).__name__} into Go struct field ConfigMap.{field} of type string"  # noqa: E501
                )


def _containers_errors(path: str, containers: Any) -> list[FieldError]:
    if not isinstance(containers, list) or not containers:
        return [_validation.required(f"{path}.containers")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        if not isinstance(container, Mapping):
            errors.append(_validation.invalid(cpath, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            errors.append(_validation.required(f"{cpath}.name"))
        else:
            errors.extend(
                _validation.invalid(f"{cpath}.name", name, p) for p in _validation.dns1123_label_errors(name)
            )
            if name in seen:
                errors.append(
                    FieldError(
                        f"{cpath}.name", "FieldValueDuplicate", f"Duplicate value: {_validation.render(name)}"
                    )
                )
            seen.add(name)
        if not container.get("image"):
            errors.append(_validation.required(f"{cpath}.image"))
        for j, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, Mapping) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                errors.append(
                    _validation.invalid(
                        f"{cpath}.ports[{j}].containerPort", number, "must be between 1 and 65535, inclusive"
                    )
                )
        for j, env in enumerate(container.get("env") or []):
            if not isinstance(env, Mapping) or not env.get("name"):
                errors.append(_validation.required(f"{cpath}.env[{j}].name"))
    return errors


def _labels_match(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def errors(
    rt: _resources.ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any] | None
) -> list[FieldError]:
    """Kind-specific 422 causes for a write of `obj` (replacing `old`, or a create when None)."""
    kind = rt.kind
    out: list[FieldError] = []
    spec: Mapping[str, Any] = obj["spec"] if isinstance(obj.get("spec"), Mapping) else {}
    if kind in ("Deployment", "StatefulSet"):
        selector = spec.get("selector")
        template: Mapping[str, Any] = spec["template"] if isinstance(spec.get("template"), Mapping) else {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not isinstance(selector, Mapping) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            out.append(_validation.required("spec.selector"))
        elif not _labels_match(selector, labels):
            out.append(
                _validation.invalid(
                    "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
                )
            )
        elif old is not None and old.get("spec", {}).get("selector") != selector:
            out.append(_validation.invalid("spec.selector", selector, "field is immutable"))
        out.extend(_containers_errors("spec.template.spec", (template.get("spec") or {}).get("containers")))
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            out.append(_validation.invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
        if kind == "StatefulSet" and old is not None:
            for field in ("serviceName", "podManagementPolicy"):
                if old.get("spec", {}).get(field) != spec.get(field):
                    out.append(
                        _validation.forbidden(
                            "spec",
                            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "  # noqa: E501
                            "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",  # noqa: E501
                        )
                    )
                    break
    elif kind == "Pod":
        out.extend(_containers_errors("spec", spec.get("containers")))
    elif kind == "Service":
        ports = spec.get("ports") or []
        if spec.get("type", "ClusterIP") != "ExternalName" and not ports and spec.get("clusterIP") != "None":
            out.append(_validation.required("spec.ports"))
        for i, port in enumerate(ports):
            number = port.get("port") if isinstance(port, Mapping) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                out.append(
                    _validation.invalid(
                        f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive"
                    )
                )
            if len(ports) > 1 and isinstance(port, Mapping) and not port.get("name"):
                out.append(_validation.required(f"spec.ports[{i}].name"))
        if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            out.append(
                FieldError(
                    "spec.type",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_validation.render(spec.get("type"))}: supported values: "ClusterIP", '  # noqa: E501
                    '"ExternalName", "LoadBalancer", "NodePort"',
                )
            )
        if old is not None and old.get("spec", {}).get("clusterIP") not in (None, "", spec.get("clusterIP")):
            out.append(_validation.invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable"))
    elif kind == "ConfigMap":
        for field in ("data", "binaryData"):
            for key in obj.get(field) or {}:
                if not _CONFIG_KEY.fullmatch(key) or len(key) > 253:
                    out.append(
                        _validation.invalid(
                            f"{field}[{key}]",
                            key,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                            "'[-._a-zA-Z0-9]+')",
                        )
                    )
        if (
            old is not None
            and old.get("immutable")
            and (old.get("data") != obj.get("data") or old.get("binaryData") != obj.get("binaryData"))
        ):
            out.append(_validation.forbidden("data", "field is immutable when `immutable` is set"))
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        out.extend(_binding_errors(kind, obj, old))
    elif kind in ("Role", "ClusterRole"):
        for i, rule in enumerate(obj.get("rules") or []):
            if not isinstance(rule, Mapping):
                out.append(_validation.invalid(f"rules[{i}]", rule, "must be an object"))
                continue
            if not rule.get("verbs"):
                out.append(_validation.required(f"rules[{i}].verbs", "verbs must contain at least one value"))
            if not rule.get("nonResourceURLs") and not rule.get("resources"):
                out.append(
                    _validation.required(
                        f"rules[{i}].resources", "resource rules must supply at least one resource"
                    )
                )
            if rule.get("nonResourceURLs") and kind == "Role":
                out.append(
                    _validation.invalid(
                        f"rules[{i}].nonResourceURLs",
                        rule["nonResourceURLs"],
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
    elif kind == "Lease":
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            out.append(_validation.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    elif kind == "Event" and rt.group == "" and not isinstance(obj.get("involvedObject"), Mapping):
        out.append(_validation.required("involvedObject"))
    return out


def _binding_errors(kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    out: list[FieldError] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        out.append(_validation.required("roleRef.name"))
        return out
    allowed_kinds = ("ClusterRole",) if kind == "ClusterRoleBinding" else ("Role", "ClusterRole")
    if ref.get("kind") not in allowed_kinds:
        supported = ", ".join(f'"{k}"' for k in allowed_kinds)
        out.append(
            FieldError(
                "roleRef.kind",
                "FieldValueNotSupported",
                f"Unsupported value: {_validation.render(ref.get('kind'))}: supported values: {supported}",
            )
        )
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        out.append(
            FieldError(
                "roleRef.apiGroup",
                "FieldValueNotSupported",
                f'Unsupported value: {_validation.render(ref.get("apiGroup", ""))}: supported values: "rbac.authorization.k8s.io"',  # noqa: E501
            )
        )
    if old is not None and old.get("roleRef") != ref:
        shown = f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", Name:"{ref.get("name", "")}"}}'  # noqa: E501
        out.append(
            FieldError("roleRef", "FieldValueInvalid", f"Invalid value: {shown}: cannot change roleRef")
        )
    for i, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{i}]"
        if not isinstance(subject, Mapping):
            out.append(_validation.invalid(path, subject, "must be an object"))
            continue
        skind = subject.get("kind")
        if not subject.get("name"):
            out.append(_validation.required(f"{path}.name"))
        if skind == "ServiceAccount":
            if subject.get("apiGroup"):
                out.append(
                    FieldError(
                        f"{path}.apiGroup",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{subject["apiGroup"]}": supported values: ""',
                    )
                )
            if kind == "ClusterRoleBinding" and not subject.get("namespace"):
                out.append(_validation.required(f"{path}.namespace"))
        elif skind in ("User", "Group"):
            if subject.get("apiGroup") != "rbac.authorization.k8s.io":
                out.append(
                    FieldError(
                        f"{path}.apiGroup",
                        "FieldValueNotSupported",
                        f'Unsupported value: {_validation.render(subject.get("apiGroup", ""))}: supported values: "rbac.authorization.k8s.io"',  # noqa: E501
                    )
                )
        else:
            out.append(
                FieldError(
                    f"{path}.kind",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_validation.render(skind)}: supported values: "ServiceAccount", "User", "Group"',  # noqa: E501
                )
            )
    return out


def crd_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    """Validation of a CustomResourceDefinition body (the parts our store relies on)."""
    from toolhive.testing import _schema

    out: list[FieldError] = []
    spec: Mapping[str, Any] = obj["spec"] if isinstance(obj.get("spec"), Mapping) else {}
    group = spec.get("group") or ""
    names: Mapping[str, Any] = spec["names"] if isinstance(spec.get("names"), Mapping) else {}
    plural = names.get("plural") or ""
    if not group:
        out.append(_validation.required("spec.group"))
    elif "." not in group:
        out.append(_validation.invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        out.append(_validation.required("spec.names.plural"))
    if not names.get("kind"):
        out.append(_validation.required("spec.names.kind"))
    name = (obj.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        out.append(_validation.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        out.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: {_validation.render(spec.get("scope", ""))}: supported values: "Cluster", "Namespaced"',  # noqa: E501
            )
        )
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if isinstance(v, Mapping) and v.get("storage")) != 1:
        out.append(
            _validation.invalid(
                "spec.versions", versions, "must have exactly one version marked as storage version"
            )
        )
    for i, version in enumerate(versions):
        if not isinstance(version, Mapping) or not version.get("name"):
            out.append(_validation.required(f"spec.versions[{i}].name"))
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            out.append(
                _validation.required(f"spec.versions[{i}].schema.openAPIV3Schema", "schemas are required")
            )
        else:
            out.extend(_schema.structural_errors(schema))
    return out

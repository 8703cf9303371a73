{{/*
Shared names, labels and checks. Every template takes its names from here, so RBAC subjects, roleRefs,
the discovery settings and NOTES.txt always agree.
*/}}

{{/* Chart name, truncated: Kubernetes names and label values stop at 63 characters. */}}
{{- define "toolhive-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Base name of every object. A release whose name already contains the chart name is used as is, so
`helm install toolhive-operator` yields ToolHive's names (`toolhive-operator`, `toolhive-operator-manager-role`).
Truncated to 63 characters because some Kubernetes name fields are limited to that (DNS labels).
*/}}
{{- define "toolhive-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fit a name into 63 characters without losing uniqueness: past the limit, keep a prefix and append a
hash of the whole name. Takes the name as its context.
*/}}
{{- define "toolhive-operator.fit" -}}
{{- if le (len .) 63 }}
{{- . }}
{{- else }}
{{- printf "%s-%s" (trunc 54 . | trimSuffix "-") (sha256sum . | trunc 8) }}
{{- end }}
{{- end }}

{{/* Base name of the discovery objects: `toolhive-operator` becomes `toolhive-discovery`. */}}
{{- define "toolhive-operator.discoveryName" -}}
{{- $full := include "toolhive-operator.fullname" . }}
{{- if hasSuffix "-operator" $full }}
{{- include "toolhive-operator.fit" (printf "%s-discovery" (trimSuffix "-operator" $full)) }}
{{- else }}
{{- include "toolhive-operator.fit" (printf "%s-discovery" $full) }}
{{- end }}
{{- end }}

{{/* The operator's ClusterRole: what discovery binds and the static RoleBindings reference. */}}
{{- define "toolhive-operator.managerRoleName" -}}
{{- include "toolhive-operator.fit" (printf "%s-manager-role" (include "toolhive-operator.fullname" .)) }}
{{- end }}

{{/*
Name of the Role and RoleBinding a fully namespaced install puts in each allowed namespace. It carries
the release namespace, so two installs that both serve one namespace never collide.
*/}}
{{- define "toolhive-operator.namespacedRoleName" -}}
{{- include "toolhive-operator.fit" (printf "%s-%s" (include "toolhive-operator.fullname" .) .Release.Namespace) }}
{{- end }}

{{/* Name of the NamespaceDiscovery object this release renders and both processes serve. */}}
{{- define "toolhive-operator.discoveryResourceName" -}}
{{- include "toolhive-operator.fullname" . }}
{{- end }}

{{/* Name of the RoleBinding discovery manages in each member namespace. */}}
{{- define "toolhive-operator.grantName" -}}
{{- include "toolhive-operator.fullname" . }}
{{- end }}

{{- define "toolhive-operator.serviceAccountName" -}}
{{- default (include "toolhive-operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "toolhive-operator.discoveryServiceAccountName" -}}
{{- default (include "toolhive-operator.discoveryName" .) .Values.discovery.serviceAccount.name }}
{{- end }}

{{- define "toolhive-operator.image" -}}
{{- default (printf "ghcr.io/toolhive-operator/toolhive-operator:%s" .Chart.AppVersion) .Values.operator.image }}
{{- end }}

{{- define "toolhive-operator.discoveryImage" -}}
{{- default (include "toolhive-operator.image" .) .Values.discovery.image }}
{{- end }}

{{/* Labels on every object. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "toolhive-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "toolhive-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: toolhive
{{- end }}

{{/* Labels a Deployment selects its pods by; they never change across upgrades. */}}
{{- define "toolhive-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "toolhive-operator.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Which of the four modes the values select (after validation): cluster, static, discovery, namespaced. */}}
{{- define "toolhive-operator.mode" -}}
{{- $rbac := .Values.operator.rbac }}
{{- if eq $rbac.scope "cluster" }}cluster
{{- else if $rbac.namespaced }}namespaced
{{- else if $rbac.discovery.enabled }}discovery
{{- else }}static
{{- end }}
{{- end }}

{{/*
Rules between values that the schema cannot say with a clear message. Each failure names the keys.
Included by the operator Deployment, which every mode renders.
*/}}
{{- define "toolhive-operator.validate" -}}
{{- $rbac := .Values.operator.rbac }}
{{- if and (eq $rbac.scope "cluster") $rbac.discovery.enabled }}
{{- fail "operator.rbac.discovery.enabled: true needs operator.rbac.scope: namespace (in cluster scope the operator already serves every namespace)" }}
{{- end }}
{{- if and (eq $rbac.scope "cluster") $rbac.namespaced }}
{{- fail "operator.rbac.namespaced: true needs operator.rbac.scope: namespace" }}
{{- end }}
{{- if and $rbac.namespaced $rbac.discovery.enabled }}
{{- fail "operator.rbac.namespaced: true cannot be combined with operator.rbac.discovery.enabled: true (discovery needs cluster-scoped RBAC)" }}
{{- end }}
{{- range $rbac.allowedNamespaces }}
{{- if has . $rbac.discovery.denyNamespaces }}
{{- if $rbac.discovery.enabled }}
{{- fail (printf "operator.rbac.allowedNamespaces: %q is also in operator.rbac.discovery.denyNamespaces (the deny list would always win)" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* OTEL_* variables for one process. Call with (dict "ctx" $ "service" "toolhive-operator"). */}}
{{- define "toolhive-operator.otelEnv" -}}
{{- $t := .ctx.Values.telemetry }}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
{{- $attributes := list "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" (printf "service.version=%s" .ctx.Chart.AppVersion) }}
{{- range $key := keys $t.resourceAttributes | sortAlpha }}
{{- $attributes = append $attributes (printf "%s=%s" $key (get $t.resourceAttributes $key)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- if $t.enabled }}
{{- with $t.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $t.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $t.samplingRatio | toString | quote }}
{{- else }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- end }}

{{/* Downward API identity; first, so later values can refer to $(POD_NAME) and $(POD_NAMESPACE). */}}
{{- define "toolhive-operator.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* TOOLHIVE_DISCOVERY__* settings both processes read in discovery mode. */}}
{{- define "toolhive-operator.discoveryEnv" -}}
- name: TOOLHIVE_DISCOVERY__ENABLED
  value: "true"
- name: TOOLHIVE_DISCOVERY__RESOURCE_NAME
  value: {{ include "toolhive-operator.discoveryResourceName" . | quote }}
- name: TOOLHIVE_DISCOVERY__CLUSTER_ROLE
  value: {{ include "toolhive-operator.managerRoleName" . | quote }}
- name: TOOLHIVE_DISCOVERY__SUBJECT_NAME
  value: {{ include "toolhive-operator.serviceAccountName" . | quote }}
- name: TOOLHIVE_DISCOVERY__SUBJECT_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: TOOLHIVE_DISCOVERY__ROLEBINDING_NAME
  value: {{ include "toolhive-operator.grantName" . | quote }}
- name: TOOLHIVE_DISCOVERY__RELEASE_GRACE_SECONDS
  value: {{ .Values.operator.rbac.discovery.releaseGraceSeconds | toString | quote }}
{{- end }}

{{/* The operator ClusterRole's rules (also the Role rules of a fully namespaced install). */}}
{{- define "toolhive-operator.managerRules" -}}
# Proxy-runner children, and everything in the proxy-runner Role the operator creates (Kubernetes only
# lets a subject grant permissions it holds itself).
- apiGroups: [""]
  resources: [configmaps, serviceaccounts, services]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/attach]
  verbs: [create, get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, delete, get, list, patch, update, watch]
- apiGroups: [toolhive.stacklok.dev]
  resources: [mcpservers]
  verbs: [get, list, patch, update, watch]
- apiGroups: [toolhive.stacklok.dev]
  resources: [mcpservers/status]
  verbs: [get, patch, update]
- apiGroups: [toolhive.stacklok.dev]
  resources: [mcpservers/finalizers]
  verbs: [update]
{{- end }}

{{/* Leader-election rules: Leases in the release namespace only. */}}
{{- define "toolhive-operator.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create, get, list, patch, update, watch]
{{- end }}

{{/* The operator container's own variables (TOOLHIVE_* settings, WATCH_NAMESPACE, OTEL_*), by mode. */}}
{{- define "toolhive-operator.operatorEnv" -}}
{{- $op := .Values.operator }}
{{- $mode := include "toolhive-operator.mode" . }}
- name: TOOLHIVE_RBAC__SCOPE
  value: {{ $op.rbac.scope | quote }}
{{- if or (eq $mode "static") (eq $mode "namespaced") }}
- name: WATCH_NAMESPACE
  value: {{ join "," $op.rbac.allowedNamespaces | quote }}
{{- end }}
{{- if eq $mode "discovery" }}
{{ include "toolhive-operator.discoveryEnv" . }}
{{- end }}
- name: TOOLHIVE_OPERATOR__RUNNER_IMAGE
  value: {{ $op.toolhiveRunnerImage | quote }}
{{- with $op.defaultImagePullSecrets }}
- name: TOOLHIVE_OPERATOR__IMAGE_PULL_SECRETS
  value: {{ join "," . | quote }}
{{- end }}
- name: TOOLHIVE_OPERATOR__MAX_CONCURRENT_RECONCILES
  value: {{ $op.maxConcurrentReconciles | toString | quote }}
- name: TOOLHIVE_OPERATOR__RESYNC_SECONDS
  value: {{ $op.resyncSeconds | toString | quote }}
- name: TOOLHIVE_LEADER_ELECTION__ENABLED
  value: {{ $op.leaderElection.enabled | toString | quote }}
- name: TOOLHIVE_OBSERVABILITY__LOG_LEVEL
  value: {{ $op.logLevel | quote }}
- name: TOOLHIVE_OBSERVABILITY__LOG_FORMAT
  value: {{ $op.logFormat | quote }}
- name: TOOLHIVE_OBSERVABILITY__METRICS_PORT
  value: {{ $op.metricsPort | toString | quote }}
- name: TOOLHIVE_OBSERVABILITY__HEALTH_PORT
  value: {{ $op.healthPort | toString | quote }}
{{ include "toolhive-operator.otelEnv" (dict "ctx" . "service" "toolhive-operator") }}
{{- end }}

{{/* The discovery container's own variables. */}}
{{- define "toolhive-operator.discoveryProcessEnv" -}}
{{- $d := .Values.discovery }}
- name: TOOLHIVE_RBAC__SCOPE
  value: "namespace"
{{ include "toolhive-operator.discoveryEnv" . }}
- name: TOOLHIVE_LEADER_ELECTION__ENABLED
  value: {{ $d.leaderElection.enabled | toString | quote }}
- name: TOOLHIVE_OBSERVABILITY__LOG_LEVEL
  value: {{ $d.logLevel | quote }}
- name: TOOLHIVE_OBSERVABILITY__LOG_FORMAT
  value: {{ $d.logFormat | quote }}
- name: TOOLHIVE_OBSERVABILITY__METRICS_PORT
  value: {{ $d.metricsPort | toString | quote }}
- name: TOOLHIVE_OBSERVABILITY__HEALTH_PORT
  value: {{ $d.healthPort | toString | quote }}
{{ include "toolhive-operator.otelEnv" (dict "ctx" . "service" "toolhive-discovery") }}
{{- end }}

{{/*
A container's env: Downward API identity, the user's extra variables, then the chart's. A user variable
that the chart also sets fails the render (duplicate names break server-side apply and would make the
winner depend on ordering). Call with (dict "ctx" $ "key" "operator.env" "extra" <list> "own" <yaml>).
*/}}
{{- define "toolhive-operator.containerEnv" -}}
{{- $own := fromYamlArray .own }}
{{- $taken := list "POD_NAME" "POD_NAMESPACE" "WATCH_NAMESPACE" }}
{{- range $own }}{{- $taken = append $taken .name }}{{- end }}
{{- range .extra }}
{{- if has .name $taken }}
{{- fail (printf "%s: %s is set by the chart; use the chart value for it instead" $.key .name) }}
{{- end }}
{{- end }}
{{- include "toolhive-operator.podEnv" . }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{ toYaml $own }}
{{- end }}

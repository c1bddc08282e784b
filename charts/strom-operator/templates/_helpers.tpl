{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "strom-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart name, else
"<release>-<chart>".
*/}}
{{- define "strom-operator.fullname" -}}
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

{{- define "strom-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "strom-operator.labels" -}}
helm.sh/chart: {{ include "strom-operator.chart" . }}
{{ include "strom-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: strom
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "strom-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strom-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "strom-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "strom-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: image.repository:image.tag (tag defaults to appVersion). */}}
{{- define "strom-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Default broker image: brokerImage, or the operator's own image. */}}
{{- define "strom-operator.brokerImage" -}}
{{- default (include "strom-operator.image" .) .Values.brokerImage }}
{{- end }}

{{- define "strom-operator.replicas" -}}
{{- if kindIs "invalid" .Values.replicaCount }}
{{- if .Values.leaderElection.enabled }}2{{ else }}1{{ end }}
{{- else }}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two operators without a leader would fight over the same brokers" }}
{{- end }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{- define "strom-operator.leaseName" -}}
{{- default (include "strom-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
RBAC rules on namespaced resources in the namespaces the operator watches: a ClusterRole
when it watches all of them, a Role per namespace otherwise.
*/}}
{{- define "strom-operator.namespacedRules" -}}
- apiGroups: ["kafka.strom.dev"]
  resources: ["kafkaclusters", "kafkatopics", "kafkausers"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["kafka.strom.dev"]
  resources: ["kafkaclusters/status", "kafkatopics/status", "kafkausers/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kafka.strom.dev"]
  resources: ["kafkaclusters/finalizers", "kafkausers/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The user controller: a KafkaUser's credentials Secret, and the Secret a password comes
# from (spec.authentication.password).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The roller: read broker pods, annotate them (manual roll requests, in-place config
# updates) and delete one at a time to restart it. No create: the StatefulSet does that.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["prometheusrules"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}

{{/* RBAC rules on cluster-scoped resources: the rack ClusterRoleBindings. */}}
{{- define "strom-operator.clusterRules" -}}
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterrolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterroles"]
  verbs: ["bind"]
  resourceNames: ["strom-broker-rack"]
{{- end }}

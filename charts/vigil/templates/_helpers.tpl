{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, prefixed with the chart name unless it already contains it.
Truncated to 54 characters so that "<fullname>-operator" still fits in 63.
*/}}
{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the operator's objects (Deployment, RBAC, ServiceAccount); cluster-scoped ones include the
release name, so two releases do not collide.
*/}}
{{- define "vigil.operatorName" -}}
{{- printf "%s-operator" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- default (include "vigil.operatorName" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Common labels (no component: each object adds its own).
*/}}
{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{/*
Labels of the operator's objects.
*/}}
{{- define "vigil.operatorLabels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Selector labels of the operator's pods.
*/}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The alarm service (`vigil alarms`): its objects' name, ServiceAccount, labels and selector.
*/}}
{{- define "vigil.alarmsName" -}}
{{- printf "%s-alarms" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.alarmsServiceAccountName" -}}
{{- default (include "vigil.alarmsName" .) .Values.alarms.serviceAccount.name }}
{{- end }}

{{- define "vigil.alarmsLabels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: alarms
{{- end }}

{{- define "vigil.alarmsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: alarms
{{- end }}

{{/*
The clip volume's claim: an existing one, or the one this chart creates.
*/}}
{{- define "vigil.clipsClaim" -}}
{{- default (printf "%s-clips" (include "vigil.fullname" .)) .Values.clips.persistence.existingClaim }}
{{- end }}

{{/*
The gateway (`vigil gateway`): its objects' name, ServiceAccount, labels, selector, and the namespace whose cameras
it serves (empty: all).
*/}}
{{- define "vigil.gatewayName" -}}
{{- printf "%s-gateway" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.gatewayServiceAccountName" -}}
{{- default (include "vigil.gatewayName" .) .Values.gateway.serviceAccount.name }}
{{- end }}

{{- define "vigil.gatewayLabels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "vigil.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "vigil.gatewayWatchNamespace" -}}
{{- default .Values.operator.watchNamespace .Values.gateway.watchNamespace }}
{{- end }}

{{/*
The restricted Pod Security Standard, for every pod of the chart (the operator's worker pods carry the same,
operator/controllers/workload.ts): the pod's part, then the container's.
*/}}
{{- define "vigil.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vigil.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
A pod's scheduling: nodeSelector and tolerations from the values, and `affinity` from the values when set, else
anti-affinity by hostname among the component's own replicas. Call with (dict "root" $ "mode" <antiAffinity>
"selector" <selector labels>).
*/}}
{{- define "vigil.scheduling" -}}
{{- $v := .root.Values }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq .mode "preferred" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- .selector | nindent 14 }}
{{- else if eq .mode "required" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .selector | nindent 12 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy egress rules to one destination of networkPolicy.egress: (dict "dest" <destination> "udp" <bool>).
A bare port number is TCP (and UDP too when "udp", for DNS); an object is a NetworkPolicyPort as it is.
*/}}
{{- define "vigil.egressRule" -}}
{{- $rule := dict }}
{{- with .dest.to }}{{ $_ := set $rule "to" . }}{{ end }}
{{- $ports := list }}
{{- range .dest.ports }}
{{- if kindIs "map" . }}
{{- $ports = append $ports . }}
{{- else }}
{{- $ports = append $ports (dict "port" . "protocol" "TCP") }}
{{- if $.udp }}{{ $ports = append $ports (dict "port" . "protocol" "UDP") }}{{ end }}
{{- end }}
{{- end }}
{{- with $ports }}{{ $_ := set $rule "ports" . }}{{ end }}
{{- toYaml (list $rule) }}
{{- end }}

{{/*
Ingress from networkPolicy.metricsFrom to a /metrics port: (dict "root" $ "port" <number>).
*/}}
{{- define "vigil.metricsIngress" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .root.Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The assessor (`vigil assessor`): its objects' name, ServiceAccount, labels, selector, and the namespace whose
AssessmentPools it runs (empty: all).
*/}}
{{- define "vigil.assessorName" -}}
{{- printf "%s-assessor" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.assessorServiceAccountName" -}}
{{- default (include "vigil.assessorName" .) .Values.assessor.serviceAccount.name }}
{{- end }}

{{- define "vigil.assessorLabels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/component: assessor
{{- end }}

{{- define "vigil.assessorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: assessor
{{- end }}

{{- define "vigil.assessorWatchNamespace" -}}
{{- default .Values.operator.watchNamespace .Values.assessor.watchNamespace }}
{{- end }}

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

{{/* Names and labels shared by every template. */}}
{{- define "dbaas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dbaas.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dbaas.labels" -}}
{{ include "dbaas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dbaas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dbaas.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dbaas.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The state database URL(s), from the Secret. */}}
{{- define "dbaas.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.stateDatabase.existingSecret }}
      key: {{ .Values.stateDatabase.urlKey }}
{{- if .Values.stateDatabase.engineUrlKey }}
- name: DBAAS_ENGINE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.stateDatabase.existingSecret }}
      key: {{ .Values.stateDatabase.engineUrlKey }}
{{- end }}
{{- end -}}

{{/* Containers run as an unprivileged user on a read-only root filesystem. */}}
{{- define "dbaas.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

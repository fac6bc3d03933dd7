{{/* The name of every object: <release>-worker unless fullnameOverride is set. */}}
{{- define "authflow.fullname" -}}
{{- default (printf "%s-worker" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the worker pods. */}}
{{- define "authflow.selectorLabels" -}}
app.kubernetes.io/name: authflow-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "authflow.labels" -}}
{{ include "authflow.selectorLabels" . }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: authflow
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "authflow.serviceAccountName" -}}
{{- default (include "authflow.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "authflow.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "authflow.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{- define "authflow.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Fails the render on a credentials mode it does not know or a missing client id. */}}
{{- define "authflow.credentialsMode" -}}
{{- $mode := .Values.credentials.mode -}}
{{- if not (has $mode (list "secret" "workloadIdentity" "managedIdentity")) -}}
{{- fail (printf "credentials.mode %q: want secret, workloadIdentity or managedIdentity" $mode) -}}
{{- end -}}
{{- if and (eq $mode "workloadIdentity") (not .Values.credentials.workloadIdentity.clientId) -}}
{{- fail "credentials.mode workloadIdentity needs credentials.workloadIdentity.clientId (the Entra application id)" -}}
{{- end -}}
{{- if and (eq $mode "secret") (not .Values.credentials.secret.name) -}}
{{- fail "credentials.mode secret needs credentials.secret.name" -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* The HTTP ingress's objects: <release>-ingress. */}}
{{- define "authflow.ingress.fullname" -}}
{{- printf "%s-ingress" (trimSuffix "-worker" (include "authflow.fullname" .)) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the ingress pods. */}}
{{- define "authflow.ingress.selectorLabels" -}}
app.kubernetes.io/name: authflow-ingress
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every ingress object. */}}
{{- define "authflow.ingress.labels" -}}
{{ include "authflow.ingress.selectorLabels" . }}
app.kubernetes.io/component: ingress
app.kubernetes.io/part-of: authflow
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "authflow.ingress.configMap" -}}
{{- default (printf "%s-config" (include "authflow.ingress.fullname" .)) .Values.ingress.config.existingConfigMap -}}
{{- end -}}

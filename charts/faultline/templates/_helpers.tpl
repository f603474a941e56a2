{{/* Names shared by every template. */}}
{{- define "faultline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "faultline.serviceName" -}}{{ include "faultline.fullname" . }}-webhook{{- end -}}
{{- define "faultline.secretName" -}}{{ include "faultline.fullname" . }}-webhook-tls{{- end -}}
{{- define "faultline.mutatingName" -}}{{ include "faultline.fullname" . }}-injector{{- end -}}
{{- define "faultline.validatingName" -}}{{ include "faultline.fullname" . }}-validator{{- end -}}

{{- define "faultline.labels" -}}
app.kubernetes.io/name: faultline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "faultline.selectorLabels" -}}
app.kubernetes.io/name: faultline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "faultline.image" -}}
{{- printf "%s:%s" .repository (default $.appVersion .tag) -}}
{{- end -}}

{{/* The namespaces no webhook entry ever selects (policy.ProtectedNamespaces plus the release's). */}}
{{- define "faultline.excludedNamespaces" -}}
- kube-system
- kube-public
- kube-node-lease
- {{ .Release.Namespace }}
{{- end -}}

{{/* The caBundle source for cert-manager mode. */}}
{{- define "faultline.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "faultline.fullname" . }}-webhook
{{- end }}
{{- end -}}

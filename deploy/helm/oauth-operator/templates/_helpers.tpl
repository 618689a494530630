{{- define "oauth-operator.labels" -}}
app.kubernetes.io/name: oauth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "oauth-operator.selector" -}}
app.kubernetes.io/name: oauth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

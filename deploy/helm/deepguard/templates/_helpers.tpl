{{/* Names and labels shared by every template. */}}

{{- define "deepguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "deepguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include "deepguard.selectorLabels" (list . "proxy") */}}
{{- define "deepguard.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "deepguard.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-keys" (include "deepguard.fullname" .)) -}}
{{- end -}}

{{/* GPUs one vLLM replica needs: tensor x pipeline parallel size. */}}
{{- define "deepguard.vllmGpus" -}}
{{- mul (int .Values.vllm.tensorParallelSize) (int .Values.vllm.pipelineParallelSize) -}}
{{- end -}}

{{- define "deepguard.vllmUrl" -}}
{{- printf "http://%s-vllm:8000" (include "deepguard.fullname" .) -}}
{{- end -}}

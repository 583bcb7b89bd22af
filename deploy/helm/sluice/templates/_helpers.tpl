{{/* Names, labels and the addresses every service is given. */}}

{{/* The release's base name: "<release>-sluice", or the release name alone
when it already holds "sluice"; at most 63 characters. */}}
{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: "<fullname>-<component>", at most 63. */}}
{{- define "sluice.name" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "sluice.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; pass (list $ "component"). */}}
{{- define "sluice.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
{{ include "sluice.selectorLabels" . }}
{{- end -}}

{{/* Labels a Service or policy selects a component's pods by. */}}
{{- define "sluice.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The Secret the services read. */}}
{{- define "sluice.secretName" -}}
{{- default (printf "%s-secrets" (include "sluice.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* A sluice service's image reference; pass (list $ $service). */}}
{{- define "sluice.image" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{- $tag := default (default $root.Chart.AppVersion $root.Values.global.image.tag) $svc.image.tag -}}
{{- if $root.Values.global.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $root.Values.global.image.registry) $svc.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $svc.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* A bundled component's image; pass its values block. */}}
{{- define "sluice.infraImage" -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end -}}

{{/* The addresses of the parts the services talk to: the configured one, or
the bundled one. */}}
{{- define "sluice.natsUrl" -}}
{{- default (printf "nats://%s:4222" (include "sluice.name" (list . "nats"))) .Values.global.nats.url -}}
{{- end -}}
{{- define "sluice.natsMonitoring" -}}
{{- default (printf "%s.%s.svc:8222" (include "sluice.name" (list . "nats")) .Release.Namespace) .Values.global.nats.monitoringEndpoint -}}
{{- end -}}
{{- define "sluice.storeEndpoint" -}}
{{- default (printf "http://%s:8000" (include "sluice.name" (list . "scylla"))) .Values.global.store.endpoint -}}
{{- end -}}
{{- define "sluice.temporalAddress" -}}
{{- default (printf "http://%s:7233" (include "sluice.name" (list . "temporal"))) .Values.global.temporal.address -}}
{{- end -}}
{{- define "sluice.s3Endpoint" -}}
{{- default (printf "http://%s:9000" (include "sluice.name" (list . "objectstore"))) .Values.global.objectStore.endpoint -}}
{{- end -}}
{{- define "sluice.otlpEndpoint" -}}
{{- if .Values.global.tracing.otlpEndpoint -}}
{{- .Values.global.tracing.otlpEndpoint -}}
{{- else if .Values.jaeger.enabled -}}
{{- printf "http://%s:4318" (include "sluice.name" (list . "jaeger")) -}}
{{- end -}}
{{- end -}}
{{- define "sluice.grpcUrl" -}}
{{- $root := index . 0 -}}
{{- printf "http://%s:9090" (include "sluice.name" (list $root (index . 1))) -}}
{{- end -}}

{{/* A service's values: serviceDefaults overlaid with its own block. */}}
{{- define "sluice.service" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.serviceDefaults) (deepCopy (index $root.Values.services $name))) -}}
{{- end -}}

{{/* The services with a gRPC API (listening on 9090). */}}
{{- define "sluice.grpcServices" -}}
transformer: true
notifier: true
orchestrator: true
{{- end -}}

{{/* The queue each KEDA-scaled service works through: stream and consumer. */}}
{{- define "sluice.workQueues" -}}
processor: {stream: INGEST, consumer: processor}
transformer: {stream: BUS, consumer: transformer}
notifier: {stream: NOTIFY, consumer: notifier}
file-ingest: {stream: FILES, consumer: file_ingest}
{{- end -}}

{{/* Pod security shared by every container: non-root, read-only, no
capabilities, the runtime's seccomp profile. */}}
{{- define "sluice.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

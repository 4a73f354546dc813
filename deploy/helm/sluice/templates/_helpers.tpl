{{/* Name of a service's objects: <release>-<service>, or the service alone when the release is "sluice". */}}
{{- define "sluice.name" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{- if eq $root.Release.Name "sluice" -}}
{{- printf "sluice-%s" $svc | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $root.Release.Name $svc | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
app.kubernetes.io/name: {{ $svc }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{/* The pods of a service's Deployment (its migrate Job's pods have component: migrate). */}}
{{- define "sluice.podLabels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "sluice.labels" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{ include "sluice.selectorLabels" (list $root $svc) }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ $root.Values.image.tag | default $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image of one app, as `npm run images` tags it. */}}
{{- define "sluice.image" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/sluice/%s:%s" (trimSuffix "/" $root.Values.image.registry) $svc $tag -}}
{{- else -}}
{{- printf "sluice/%s:%s" $svc $tag -}}
{{- end -}}
{{- end -}}

{{/* Merged settings of one service: defaults overlaid with services.<name>. */}}
{{- define "sluice.cfg" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}
{{- $cfg := mustMergeOverwrite (deepCopy $root.Values.defaults) (deepCopy (index $root.Values.services $svc)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* env and envFrom shared by a service's Deployment and its migrate Job. */}}
{{- define "sluice.env" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}{{- $cfg := index . 2 -}}
envFrom:
  {{- if $root.Values.commonSecret }}
  - secretRef:
      name: {{ $root.Values.commonSecret }}
  {{- end }}
  {{- if and $root.Values.nats.auth.enabled $cfg.natsUser }}
  - secretRef:
      name: {{ printf "%s%s" $root.Values.nats.auth.secretPrefix $cfg.natsUser }}
  {{- end }}
  {{- if $cfg.existingSecret }}
  - secretRef:
      name: {{ $cfg.existingSecret }}
  {{- end }}
env:
  - name: NATS_URL
    value: {{ $root.Values.nats.url | quote }}
  - name: OPS_PORT
    value: "9400"
  - name: OPS_HOST
    value: 0.0.0.0
  {{- if $root.Values.sluiceNamespace }}
  - name: SLUICE_NAMESPACE
    value: {{ $root.Values.sluiceNamespace | quote }}
  {{- end }}
  - name: OTEL_SERVICE_NAME
    value: {{ $svc }}
  {{- range $k, $v := $root.Values.env }}
  {{- if ne (toString $v) "" }}
  - name: {{ $k }}
    value: {{ toString $v | quote }}
  {{- end }}
  {{- end }}
  {{- range $f := $cfg.secretFiles }}
  {{- range $k, $v := $f.env }}
  - name: {{ $k }}
    value: {{ toString $v | quote }}
  {{- end }}
  {{- end }}
  {{- range $k, $v := $cfg.env }}
  - name: {{ $k }}
    value: {{ toString $v | quote }}
  {{- end }}
  {{- range $k, $ref := $cfg.serviceUrls }}
  {{- if not (hasKey ($cfg.env | default dict) $k) }}
  - name: {{ $k }}
    value: {{ include "sluice.serviceUrl" (list $root $svc $ref) | quote }}
  {{- end }}
  {{- end }}
{{- end -}}

{{/* The names of the enabled services. */}}
{{- define "sluice.enabledServices" -}}
{{- $root := . -}}
{{- $names := list -}}
{{- range $svc, $_ := $root.Values.services -}}
{{- $cfg := include "sluice.cfg" (list $root $svc) | fromYaml -}}
{{- if $cfg.enabled }}{{ $names = append $names $svc }}{{ end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The port number of `<service>:<port name>` (a name among services.<service>.ports, or ops). */}}
{{- define "sluice.servicePort" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}{{- $ref := index . 2 -}}
{{- $target := first (splitList ":" $ref) -}}{{- $portName := last (splitList ":" $ref) -}}
{{- if not (has $target (include "sluice.enabledServices" $root | fromJsonArray)) -}}
{{- fail (printf "services.%s.serviceUrls names %q, but service %q is not enabled" $svc $ref $target) -}}
{{- end -}}
{{- $cfg := include "sluice.cfg" (list $root $target) | fromYaml -}}
{{- $port := 0 -}}
{{- if eq $portName "ops" }}{{ $port = 9400 }}{{ end -}}
{{- range $cfg.ports }}{{ if eq .name $portName }}{{ $port = .port }}{{ end }}{{ end -}}
{{- if not $port -}}
{{- fail (printf "services.%s.serviceUrls names %q, but %s has no port %q" $svc $ref $target $portName) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* The value of one serviceUrls entry: http://<Service>:<port>, or for `*:ops` every other enabled
service as <name>=http://<Service>:9400, comma-separated. */}}
{{- define "sluice.serviceUrl" -}}
{{- $root := index . 0 -}}{{- $svc := index . 1 -}}{{- $ref := index . 2 -}}
{{- if eq $ref "*:ops" -}}
{{- $targets := list -}}
{{- range $other := include "sluice.enabledServices" $root | fromJsonArray -}}
{{- if ne $other $svc -}}
{{- $targets = append $targets (printf "%s=http://%s:9400" $other (include "sluice.name" (list $root $other))) -}}
{{- end -}}
{{- end -}}
{{- join "," $targets -}}
{{- else -}}
{{- printf "http://%s:%s" (include "sluice.name" (list $root (first (splitList ":" $ref)))) (include "sluice.servicePort" (list $root $svc $ref)) -}}
{{- end -}}
{{- end -}}

{{/* Volumes (and their mounts) shared by a service's Deployment and its migrate Job. */}}
{{- define "sluice.volumes" -}}
{{- $root := index . 0 -}}{{- $cfg := index . 1 -}}
- name: tmp
  emptyDir: {}
{{- if and $root.Values.nats.auth.enabled $cfg.natsUser }}
- name: nats-seed
  secret:
    secretName: {{ printf "%s%s" $root.Values.nats.auth.secretPrefix $cfg.natsUser }}
    defaultMode: 0440
    items:
      - key: seed.nk
        path: seed.nk
{{- end }}
{{- range $i, $f := $cfg.secretFiles }}
- name: {{ printf "secret-%d" $i }}
  secret:
    secretName: {{ $f.secretName }}
    defaultMode: 0440
{{- end }}
{{- range $i, $f := $cfg.configMapFiles }}
- name: {{ printf "config-%d" $i }}
  configMap:
    name: {{ $f.configMapName }}
{{- end }}
{{- with $cfg.scratch }}
- name: scratch
  emptyDir:
    sizeLimit: {{ .sizeLimit }}
{{- end }}
{{- end -}}

{{- define "sluice.volumeMounts" -}}
{{- $root := index . 0 -}}{{- $cfg := index . 1 -}}
- name: tmp
  mountPath: /tmp
{{- if and $root.Values.nats.auth.enabled $cfg.natsUser }}
- name: nats-seed
  mountPath: {{ $root.Values.nats.auth.mountPath }}
  readOnly: true
{{- end }}
{{- range $i, $f := $cfg.secretFiles }}
- name: {{ printf "secret-%d" $i }}
  mountPath: {{ $f.mountPath }}
  readOnly: true
{{- end }}
{{- range $i, $f := $cfg.configMapFiles }}
- name: {{ printf "config-%d" $i }}
  mountPath: {{ $f.mountPath }}
  readOnly: true
{{- end }}
{{- with $cfg.scratch }}
- name: scratch
  mountPath: {{ .mountPath }}
{{- end }}
{{- end -}}

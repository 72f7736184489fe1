{{/* Chart name, truncated to the 63 characters DNS names allow. */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "switchyard.fullname" -}}
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

{{/*
A resource name: fullname plus a suffix, the fullname shortened so that the suffix always
survives (names stay distinct and within 63 characters).
Usage: include "switchyard.resourceName" (list . "router-headless")
*/}}
{{- define "switchyard.resourceName" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "switchyard.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "switchyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels. Usage: include "switchyard.selectorLabels" (list . "edge") */}}
{{- define "switchyard.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "switchyard.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Standard labels. Usage: include "switchyard.labels" (list . "edge") */}}
{{- define "switchyard.labels" -}}
{{- $ctx := index . 0 -}}
helm.sh/chart: {{ include "switchyard.chart" $ctx }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/part-of: switchyard
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- end }}

{{/* The image: repository@digest when image.digest is set, else repository:tag. */}}
{{- define "switchyard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The router headless Service; every edge links to every address behind it. */}}
{{- define "switchyard.routerHeadless" -}}
{{- include "switchyard.resourceName" (list . "router-headless") }}
{{- end }}

{{- define "switchyard.routersAddress" -}}
{{- printf "%s.%s.svc.cluster.local:7400" (include "switchyard.routerHeadless" .) .Release.Namespace }}
{{- end }}

{{/* Secret names and keys: the existing Secret when given, else the chart's own. */}}
{{- define "switchyard.secretName" -}}
{{- include "switchyard.resourceName" (list . "secrets") }}
{{- end }}

{{- define "switchyard.postgresSecret" -}}
{{- default (include "switchyard.secretName" .) .Values.postgres.existingSecret }}
{{- end }}

{{- define "switchyard.redisSecret" -}}
{{- default (include "switchyard.secretName" .) .Values.redis.existingSecret }}
{{- end }}

{{- define "switchyard.adminSecret" -}}
{{- default (include "switchyard.secretName" .) .Values.admin.existingSecret }}
{{- end }}

{{- define "switchyard.adminEnabled" -}}
{{- if or .Values.admin.token .Values.admin.existingSecret }}true{{ end }}
{{- end }}

{{/*
The edges' client TLS Secret: tls.existingSecret (which cert-manager writes when
tls.certManager is on), else the chart's <fullname>-tls from tls.cert or cert-manager;
empty when there is none (self-signed development certificates).
*/}}
{{- define "switchyard.tlsSecret" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else if or .Values.tls.cert .Values.tls.certManager.enabled }}
{{- include "switchyard.resourceName" (list . "tls") }}
{{- end }}
{{- end }}

{{/*
Cluster TLS (the edge-router link): one kubernetes.io/tls Secret per role (ca.crt, tls.crt,
tls.key). Usage: include "switchyard.clusterTlsSecret" (list . "router")
*/}}
{{- define "switchyard.clusterTlsSecret" -}}
{{- include "switchyard.resourceName" (list (index . 0) (printf "cluster-tls-%s" (index . 1))) }}
{{- end }}

{{/* The DNS name every router's certificate carries and edges check (cluster.tls_server_name). */}}
{{- define "switchyard.routerServerName" -}}
{{- printf "%s.%s.svc.cluster.local" (include "switchyard.routerHeadless" .) .Release.Namespace }}
{{- end }}

{{/* The edges' certificate name: their identity to routers. */}}
{{- define "switchyard.edgeIdentity" -}}
{{- printf "%s.%s.svc.cluster.local" (include "switchyard.resourceName" (list . "edge")) .Release.Namespace }}
{{- end }}

{{/* The cluster TLS Secret as a volume and its mount (directory: renewals reach the pod). */}}
{{- define "switchyard.clusterTlsVolume" -}}
- name: cluster-tls
  secret:
    secretName: {{ include "switchyard.clusterTlsSecret" . }}
    defaultMode: 0440
{{- end }}

{{- define "switchyard.clusterTlsVolumeMount" -}}
- name: cluster-tls
  mountPath: {{ include "switchyard.clusterTlsDir" . }}
  readOnly: true
{{- end }}

{{/*
PostgreSQL's connection settings, for every container that talks to it (routers, the
migration Job). Usage: include "switchyard.postgresEnv" (list . URL-SECRET), URL-SECRET
the Secret holding the URL under postgres.existingSecretKey (unused with credentials).
*/}}
{{- define "switchyard.postgresEnv" -}}
{{- $ctx := index . 0 }}
{{- $pg := $ctx.Values.postgres }}
{{- $c := $pg.credentials }}
{{- if $c.existingSecret }}
# Host, port, database, user and password from Secret {{ $c.existingSecret }}
# (postgres.credentials); the URL carries only the TLS mode.
- name: SWITCHYARD_POSTGRES__URL
  value: {{ printf "sslmode=%s" $pg.sslmode | quote }}
{{- range $part := list "host" "port" "dbname" "user" }}
{{- $value := index $c $part }}
{{- $key := index $c (printf "%sKey" $part) }}
{{- if $value }}
- name: SWITCHYARD_POSTGRES__{{ upper $part }}
  value: {{ ternary ($value | int | toString) ($value | toString) (eq $part "port") | quote }}
{{- else if $key }}
- name: SWITCHYARD_POSTGRES__{{ upper $part }}
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret }}
      key: {{ $key }}
      {{- if eq $part "port" }}
      # Without it: the URL's port, else 5432.
      optional: true
      {{- end }}
{{- end }}
{{- end }}
- name: SWITCHYARD_POSTGRES__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret }}
      key: {{ $c.passwordKey }}
      optional: false
{{- else }}
- name: SWITCHYARD_POSTGRES__URL
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ $pg.existingSecretKey }}
{{- end }}
{{- if include "switchyard.caSource" $pg.ca }}
# The CA of PostgreSQL's certificate (postgres.ca).
- name: SWITCHYARD_POSTGRES__CA_PATH
  value: {{ printf "%s/ca.crt" (include "switchyard.postgresCaDir" $ctx) | quote }}
{{- end }}
{{- end }}

{{/* "true" when a CA (postgres.ca or redis.ca) is configured. Usage: include "switchyard.caSource" .Values.postgres.ca */}}
{{- define "switchyard.caSource" -}}
{{- if or .secret .configMap }}true{{ end }}
{{- end }}

{{/*
A CA from a Secret or a ConfigMap as a volume: its key as ca.crt, mounted as a directory
(updates reach the pod). Usage: include "switchyard.caVolume" (list "postgres-ca" .Values.postgres.ca)
*/}}
{{- define "switchyard.caVolume" -}}
{{- $name := index . 0 }}
{{- $ca := index . 1 }}
- name: {{ $name }}
  {{- if $ca.secret }}
  secret:
    secretName: {{ $ca.secret }}
  {{- else }}
  configMap:
    name: {{ $ca.configMap }}
  {{- end }}
    items:
      - key: {{ $ca.key }}
        path: ca.crt
    defaultMode: 0444
{{- end }}

{{- define "switchyard.caVolumeMount" -}}
- name: {{ index . 0 }}
  mountPath: {{ index . 1 }}
  readOnly: true
{{- end }}

{{/* Where the configuration and the TLS files are mounted. */}}
{{- define "switchyard.configPath" -}}/etc/switchyard/switchyard.toml{{- end }}
{{- define "switchyard.tlsDir" -}}/etc/switchyard/tls{{- end }}
{{- define "switchyard.clusterTlsDir" -}}/etc/switchyard/cluster-tls{{- end }}
{{- define "switchyard.postgresCaDir" -}}/etc/switchyard/postgres-ca{{- end }}
{{- define "switchyard.redisCaDir" -}}/etc/switchyard/redis-ca{{- end }}
{{- define "switchyard.dataDir" -}}/var/lib/switchyard{{- end }}

{{/*
Checks that need more than the values schema. Included by every workload template, so a
bad combination fails `helm install` / `helm template` with a message naming the values.
*/}}
{{- define "switchyard.validate" -}}
{{- $pg := .Values.postgres }}
{{- $creds := $pg.credentials }}
{{- if not (or $pg.url $pg.existingSecret $creds.existingSecret) }}
{{- fail "postgres.url, postgres.existingSecret or postgres.credentials.existingSecret is required: the routers and the migration Job need PostgreSQL" }}
{{- end }}
{{- if and $creds.existingSecret (or $pg.url $pg.existingSecret) }}
{{- fail "postgres.credentials.existingSecret and postgres.url/postgres.existingSecret both say where PostgreSQL is: choose one (with credentials, the TLS mode is postgres.sslmode)" }}
{{- end }}
{{- if $creds.existingSecret }}
{{- range $part := list "host" "user" }}
{{- if not (or (index $creds $part) (index $creds (printf "%sKey" $part))) }}
{{- fail (printf "postgres.credentials.%s or postgres.credentials.%sKey is required with postgres.credentials.existingSecret (Bitnami's Secret has no %s key: give it in postgres.credentials.%s)" $part $part $part $part) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name := list "postgres" "redis" }}
{{- $ca := (index $.Values $name).ca }}
{{- if and $ca.secret $ca.configMap }}
{{- fail (printf "%s.ca.secret and %s.ca.configMap both give the CA: choose one" $name $name) }}
{{- end }}
{{- if and (or $ca.secret $ca.configMap) (index (index $.Values.config $name | default dict) "ca_path") }}
{{- fail (printf "%s.ca and config.%s.ca_path both give the CA: choose one (%s.ca mounts it and sets the path)" $name $name $name) }}
{{- end }}
{{- end }}
{{- if not (or .Values.redis.urls .Values.redis.existingSecret) }}
{{- fail "redis.urls or redis.existingSecret is required: routers share the session registry in Redis" }}
{{- end }}
{{- if and .Values.tls.cert (not .Values.tls.key) }}
{{- fail "tls.cert is set but tls.key is empty" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.issuerRef.name is required when tls.certManager.enabled: the Issuer or ClusterIssuer of the client certificate" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled .Values.tls.cert }}
{{- fail "tls.cert and tls.certManager.enabled both give the client certificate: choose one" }}
{{- end }}
{{- if and .Values.clusterTls.certManager.enabled (not .Values.clusterTls.certManager.issuerRef.name) }}
{{- fail "clusterTls.certManager.issuerRef.name is required when clusterTls.certManager.enabled: the Issuer of the cluster certificates" }}
{{- end }}
{{- if and .Values.components.enabled (not .Values.components.existingSecret) }}
{{- fail "components.existingSecret is required when components.enabled: the Secret holding the [[components]] (domains and secrets) as a TOML array" }}
{{- end }}
{{- $t := .Values.config.timeouts | default dict }}
{{- $drain := 5 }}
{{- if hasKey $t "drain_delay_secs" }}{{ $drain = $t.drain_delay_secs }}{{ end }}
{{- $grace := 10 }}
{{- if hasKey $t "shutdown_grace_secs" }}{{ $grace = $t.shutdown_grace_secs }}{{ end }}
{{- range $role := list "edge" "router" }}
{{- $reserved := list "config" "data" "tmp" "cluster-tls" }}
{{- if eq $role "edge" }}{{ $reserved = append $reserved "tls" }}{{ end }}
{{- if eq $role "router" }}
{{- if include "switchyard.caSource" $.Values.postgres.ca }}{{ $reserved = append $reserved "postgres-ca" }}{{ end }}
{{- if include "switchyard.caSource" $.Values.redis.ca }}{{ $reserved = append $reserved "redis-ca" }}{{ end }}
{{- end }}
{{- range (index $.Values $role).extraVolumes }}
{{- if has .name $reserved }}
{{- fail (printf "%s.extraVolumes: the volume name %q is the chart's own (taken: %s)" $role .name (join ", " $reserved)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $need := add (int $drain) (int $grace) 5 }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least config.timeouts.drain_delay_secs + shutdown_grace_secs + 5 = %d" (int .Values.terminationGracePeriodSeconds) (int $need)) }}
{{- end }}
{{- end }}

{{/*
Renders a two-level map as TOML: top-level scalars first, then one [section] per map.
Values go through toJson, whose strings, numbers, booleans and arrays are valid TOML.
*/}}
{{- define "switchyard.toml" -}}
{{- range $key, $value := . }}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ include "switchyard.tomlValue" (list $key $value) }}
{{- end }}
{{- end }}
{{- range $section, $keys := . }}
{{- if and (kindIs "map" $keys) $keys }}

[{{ $section }}]
{{- range $key, $value := $keys }}
{{ $key }} = {{ include "switchyard.tomlValue" (list $key $value) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
One TOML value. Helm reads every YAML number as a float, so `*_ratio` keys (floats in
Switchyard's config) keep a decimal point even when whole: 1.0, not 1.
*/}}
{{- define "switchyard.tomlValue" -}}
{{- $key := index . 0 }}
{{- $value := index . 1 }}
{{- if and (hasSuffix "_ratio" $key) (kindIs "float64" $value) (eq (float64 (int $value)) $value) }}
{{- printf "%.1f" $value }}
{{- else }}
{{- $value | toJson }}
{{- end }}
{{- end }}

{{/* Pod-level security context shared by every pod. */}}
{{- define "switchyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context: non-root, read-only root filesystem, no capabilities. */}}
{{- define "switchyard.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
Liveness and readiness on the admin port, and the role's startup probe when enabled.
Usage: include "switchyard.probes" (list . "edge")
*/}}
{{- define "switchyard.probes" -}}
{{- $ctx := index . 0 -}}
{{- $startup := (index $ctx.Values (index . 1)).startupProbe -}}
{{- if $startup.enabled }}
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml (omit $startup "enabled") | nindent 2 }}
{{- end }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml $ctx.Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml $ctx.Values.probes.readiness | nindent 2 }}
{{- end }}

{{/* Environment shared by every Switchyard container. */}}
{{- define "switchyard.commonEnv" -}}
- name: SWITCHYARD_CONFIG
  value: {{ include "switchyard.configPath" . | quote }}
# The image sets SWITCHYARD_DATA_DIR=/data, and variables beat the file: point it at the
# writable emptyDir here too.
- name: SWITCHYARD_DATA_DIR
  value: {{ include "switchyard.dataDir" . | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/*
XEP-0114 components (components.enabled): the [[components]] as an inline TOML array from
the existing Secret. Edges check the secrets, routers route by the domains: both get it.
*/}}
{{- define "switchyard.componentsEnv" -}}
# [[components]] as a TOML array, e.g. [{domain="push.example.org",secret="..."}].
- name: SWITCHYARD_COMPONENTS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.components.existingSecret }}
      key: {{ .Values.components.existingSecretKey }}
{{- end }}

{{/* Volumes (and their mounts) shared by edges and routers: config, data_dir, /tmp. */}}
{{- define "switchyard.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "switchyard.fullname" . }}
- name: data
  emptyDir:
    sizeLimit: 256Mi
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "switchyard.commonVolumeMounts" -}}
- name: config
  mountPath: {{ include "switchyard.configPath" . }}
  subPath: switchyard.toml
  readOnly: true
- name: data
  mountPath: {{ include "switchyard.dataDir" . }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Scheduling of one role: nodeSelector, tolerations, affinity (or the podAntiAffinity
preset), topology spread (a constraint without labelSelector gets the role's selector
labels), priority. Usage: include "switchyard.scheduling" (list . "edge")
*/}}
{{- define "switchyard.scheduling" -}}
{{- $ctx := index . 0 -}}
{{- $role := index . 1 -}}
{{- $v := index $ctx.Values $role -}}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq $v.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "switchyard.selectorLabels" (list $ctx $role) | nindent 14 }}
{{- else if eq $v.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "switchyard.selectorLabels" (list $ctx $role) | nindent 12 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
{{- $constraints := list }}
{{- range . }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "switchyard.selectorLabels" (list $ctx $role) | fromYaml)) }}
{{- end }}
{{- $constraints = append $constraints $c }}
{{- end }}
topologySpreadConstraints:
  {{- toYaml $constraints | nindent 2 }}
{{- end }}
{{- end }}

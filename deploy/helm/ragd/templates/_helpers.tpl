{{/* Names and labels. */}}
{{- define "ragd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ragd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ragd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ragd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ragd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ragd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ragd
{{- end -}}

{{/* Labels of a component (mongodb, redis, ...): its own selector. */}}
{{- define "ragd.componentSelector" -}}
app.kubernetes.io/name: {{ include "ragd.name" .root }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "ragd.componentLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "ragd.componentSelector" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ragd
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ragd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ragd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ragd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Cluster DNS suffix of a headless Service's pods. */}}
{{- define "ragd.svcDomain" -}}
{{- printf "%s.svc.cluster.local" .Release.Namespace -}}
{{- end -}}

{{/* Redis Cluster seed nodes, host:port separated by commas. */}}
{{- define "ragd.redisSeeds" -}}
{{- $full := include "ragd.fullname" . -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.redisCluster.nodes) -}}
{{- $seeds = append $seeds (printf "%s-redis-%d.%s-redis.%s:6379" $full $i $full (include "ragd.svcDomain" $)) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}

{{/* MongoDB connection string for whichever MongoDB the chart runs. */}}
{{- define "ragd.mongoUri" -}}
{{- $full := include "ragd.fullname" . -}}
{{- if .Values.mongodbSharded.enabled -}}
{{- printf "mongodb://%s-mongos.%s:27017/" $full (include "ragd.svcDomain" .) -}}
{{- else -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.mongodb.replicas) -}}
{{- $hosts = append $hosts (printf "%s-mongodb-%d.%s-mongodb.%s:27017" $full $i $full (include "ragd.svcDomain" $)) -}}
{{- end -}}
{{- printf "mongodb://%s/?replicaSet=%s" (join "," $hosts) .Values.mongodb.replicaSetName -}}
{{- end -}}
{{- end -}}

{{/*
ragd's configuration file (docs/configuration.md), derived from the values,
then .Values.ragd.config merged over it. Keys that only exist once other
branches land are emitted only when their values flag is on.
*/}}
{{- define "ragd.config" -}}
{{- $v := .Values -}}
{{- $models := dict "dir" $v.models.path "embedder" (printf "%s/%s" $v.models.path $v.models.embedder) -}}
{{- if $v.models.generator -}}
{{- $_ := set $models "generator" (printf "%s/%s" $v.models.path $v.models.generator) -}}
{{- else -}}
{{- $_ := set $models "generator" "" -}}
{{- end -}}
{{- $server := dict "host" "0.0.0.0" "port" (int $v.port) "shutdown_timeout_s" (int $v.ragd.shutdownTimeoutSeconds) -}}
{{- if gt (int $v.ragd.workers) 0 -}}
{{- $_ := set $server "workers" (int $v.ragd.workers) -}}
{{- end -}}
{{- $c := dict "environment" $v.ragd.environment "data_dir" $v.data.path "server" $server "models" $models "log" (dict "level" $v.ragd.logLevel) -}}
{{- if $v.redisCluster.enabled -}}
{{- $_ := set $c "cache" (dict "backend" "two-level" "lru_bytes" $v.ragd.cacheLruBytes "redis" (dict "url" (include "ragd.redisSeeds" .))) -}}
{{- else -}}
{{- $_ := set $c "cache" (dict "backend" "lru" "lru_bytes" $v.ragd.cacheLruBytes) -}}
{{- end -}}
{{- if $v.ragd.replicationNudge -}}
{{- $url := $v.ragd.replicationRedisUrl -}}
{{- if and (not $url) $v.redisCluster.enabled -}}
{{- $url = printf "redis://%s" (first (splitList "," (include "ragd.redisSeeds" .))) -}}
{{- end -}}
{{- if not $url -}}
{{- fail "ragd.replicationNudge needs ragd.replicationRedisUrl or redisCluster.enabled" -}}
{{- end -}}
{{- $_ := set $c "replication" (dict "redis_url" $url) -}}
{{- end -}}
{{- if or $v.mongodb.enabled $v.mongodbSharded.enabled -}}
{{- $db := ternary $v.mongodbSharded.database $v.mongodb.database $v.mongodbSharded.enabled -}}
{{- $_ := set $c "store" (dict "backend" "mongodb" "mongodb" (dict "uri" (include "ragd.mongoUri" .) "database" $db)) -}}
{{- end -}}
{{- if $v.auth.enabled -}}
{{- $_ := set $c "auth" (dict "enabled" true) -}}
{{- end -}}
{{- if $v.sharding.enabled -}}
{{- $full := include "ragd.fullname" . -}}
{{- $pattern := printf "http://%s-{i}.%s-headless.%s:%d" $full $full (include "ragd.svcDomain" .) (int $v.port) -}}
{{- $_ := set $c "sharding" (dict "shards" (int $v.sharding.shards) "peer_pattern" $pattern "instances" (int $v.replicaCount) "timeout_ms" (int $v.sharding.timeoutMs)) -}}
{{- end -}}
{{- $c = mergeOverwrite $c (deepCopy $v.ragd.config) -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Guard rails: combinations that cannot work. */}}
{{- define "ragd.validate" -}}
{{- if and .Values.mongodb.enabled .Values.mongodbSharded.enabled -}}
{{- fail "mongodb.enabled and mongodbSharded.enabled are exclusive: pick one store" -}}
{{- end -}}
{{- if and .Values.sharding.enabled .Values.autoscaling.enabled -}}
{{- fail "sharding.enabled needs a fixed replica count (sharding.instances): set autoscaling.enabled=false" -}}
{{- end -}}
{{- if and .Values.autoscaling.queriesPerSecond.enabled (not .Values.autoscaling.enabled) -}}
{{- fail "autoscaling.queriesPerSecond.enabled needs autoscaling.enabled" -}}
{{- end -}}
{{- end -}}

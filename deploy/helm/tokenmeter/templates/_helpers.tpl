{{/*
Names. The full name is the release's when it already holds the chart's name, so `helm install tokenmeter` makes
objects called tokenmeter, not tokenmeter-tokenmeter.
*/}}
{{- define "tokenmeter.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tokenmeter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tokenmeter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenmeter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tokenmeter.labels" -}}
{{ include "tokenmeter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "tokenmeter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tokenmeter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tokenmeter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* "true" with the shared (Redis) store, "" with the embedded one. */}}
{{- define "tokenmeter.shared" -}}
{{- if eq .Values.store.type "redis" -}}true{{- end -}}
{{- end -}}

{{/*
The secrets tokenmeter reads from its environment (the config's *_env keys), as a list of
{env, v, what}: the environment variable, the value block it comes from (existingSecret, existingSecretKey,
value) and that block's name for errors. A secret that is not configured is left out.
*/}}
{{- define "tokenmeter.secretEnvs" -}}
{{- $all := list -}}
{{- if eq .Values.store.type "redis" -}}
{{- $all = append $all (dict "env" "REDIS_PASSWORD" "v" .Values.redis.password "what" "redis.password") -}}
{{- end -}}
{{- $all = append $all (dict "env" "TOKENMETER_ADMIN_TOKEN" "v" .Values.adminToken "what" "adminToken") -}}
{{- $all = append $all (dict "env" "TOKENMETER_KEY_SECRET" "v" .Values.apiKeys "what" "apiKeys") -}}
{{- $out := list -}}
{{- range $all -}}
{{- if and .v.existingSecret .v.value -}}
{{- fail (printf "%s: set existingSecret or value, not both" .what) -}}
{{- end -}}
{{- if or .v.existingSecret .v.value -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The name of the Secret this chart makes, for the values set inline. */}}
{{- define "tokenmeter.secretName" -}}
{{- include "tokenmeter.fullname" . -}}
{{- end -}}

{{/*
The keys the chart owns in tokenmeter.yaml, each with the value to set instead: a user's config that sets one would
be overwritten without a word, or would point a listener or a store where the pod has no port or volume (or, for the
key-hashing secret, at a variable or file the pod does not have).
*/}}
{{- define "tokenmeter.ownedKeys" -}}
{{- toJson (dict
  "listen" "ports.grpc and ports.admin"
  "store.type" "store.type"
  "store.dir" "persistence"
  "store.redis" "redis"
  "ledger.dir" "ledger.enabled"
  "admin.token_env" "adminToken"
  "attribution.api_keys.secret_env" "apiKeys"
  "attribution.api_keys.secret_file" "apiKeys") -}}
{{- end -}}

{{/* tokenmeter.yaml: the user's config with the keys the chart owns. */}}
{{- define "tokenmeter.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- range $path, $instead := fromJson (include "tokenmeter.ownedKeys" .) -}}
{{- $parts := splitList "." $path -}}
{{- $node := $cfg -}}
{{- range $i, $part := $parts -}}
{{- if and (kindIs "map" $node) (hasKey $node $part) -}}
{{- if eq (add1 $i) (len $parts) -}}
{{- fail (printf "config.%s is set by the chart: use the value %s instead" $path $instead) -}}
{{- end -}}
{{- $node = get $node $part -}}
{{- else -}}
{{- /* Not there, or not a mapping to hold it: nothing below can be set. */ -}}
{{- $node = "" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $attribution := get $cfg "attribution" -}}
{{- $userKeys := and (kindIs "map" $attribution) (hasKey $attribution "api_keys") -}}
{{- if $userKeys -}}
{{- $v := get $attribution "api_keys" -}}
{{- /* Merged with the chart's secret_env, anything but a mapping (or nothing) would be lost without a word. */ -}}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v)) -}}
{{- fail "config.attribution.api_keys: want a mapping (unknown, missing, keys: docs/config.md)" -}}
{{- end -}}
{{- end -}}
{{- $owned := dict "listen" (dict
  "grpc" (printf "0.0.0.0:%d" (int .Values.ports.grpc))
  "admin" (printf "0.0.0.0:%d" (int .Values.ports.admin))) -}}
{{- $store := dict "type" .Values.store.type -}}
{{- $redis := dict "addrs" .Values.redis.addrs "cluster" .Values.redis.cluster "db" (int .Values.redis.db)
  "key_prefix" .Values.redis.keyPrefix "timeout" .Values.redis.timeout -}}
{{- with .Values.redis.username -}}{{- $_ := set $redis "username" . -}}{{- end -}}
{{- if include "tokenmeter.shared" . -}}
{{- $_ := set $store "redis" $redis -}}
{{- else -}}
{{- $_ := set $store "dir" "/var/lib/tokenmeter/badger" -}}
{{- end -}}
{{- $_ := set $owned "store" $store -}}
{{- $_ := set $owned "ledger" (dict "dir" (ternary "/var/lib/tokenmeter/ledger" "" .Values.ledger.enabled)) -}}
{{- range fromJsonArray (include "tokenmeter.secretEnvs" .) -}}
{{- if eq .env "REDIS_PASSWORD" -}}
{{- $_ := set $redis "password_env" .env -}}
{{- end -}}
{{- if eq .env "TOKENMETER_ADMIN_TOKEN" -}}
{{- $_ := set $owned "admin" (dict "token_env" .env) -}}
{{- end -}}
{{- if eq .env "TOKENMETER_KEY_SECRET" -}}
{{- /*
tokenmeter would refuse a short one at start, in a crash loop; refused here it is one clear error. 32 is
apikey.MinSecretBytes (TestBadValues holds them together).
*/ -}}
{{- if and .v.value (lt (len .v.value) 32) -}}
{{- fail (printf "apiKeys.value: %d bytes; want at least 32 (e.g. openssl rand -hex 32)" (len .v.value)) -}}
{{- end -}}
{{- $_ := set $owned "attribution" (dict "api_keys" (dict "secret_env" .env)) -}}
{{- end -}}
{{- end -}}
{{- if and $userKeys (not (hasKey $owned "attribution")) -}}
{{- fail "config.attribution.api_keys needs the secret keys are hashed with: set apiKeys.value or apiKeys.existingSecret" -}}
{{- end -}}
{{- toYaml (mergeOverwrite $cfg $owned) -}}
{{- end -}}

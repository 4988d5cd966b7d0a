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
{env, v, what, header}: the environment variable, the value block it comes from (existingSecret, existingSecretKey,
value), that block's name for errors and, for a CloudEvents header, the header's name. A secret that is not
configured is left out.
*/}}
{{- define "tokenmeter.secretEnvs" -}}
{{- $all := list -}}
{{- if eq .Values.store.type "redis" -}}
{{- $all = append $all (dict "env" "REDIS_PASSWORD" "v" .Values.redis.password "what" "redis.password") -}}
{{- end -}}
{{- $all = append $all (dict "env" "TOKENMETER_ADMIN_TOKEN" "v" .Values.adminToken "what" "adminToken") -}}
{{- $all = append $all (dict "env" "TOKENMETER_KEY_SECRET" "v" .Values.apiKeys "what" "apiKeys") -}}
{{- $all = append $all (dict "env" "TOKENMETER_LEDGER_DSN" "v" .Values.ledger.postgres "what" "ledger.postgres") -}}
{{- $all = append $all (dict "env" "TOKENMETER_CLOUDEVENTS_URL" "v" .Values.cloudEvents.url
  "what" "cloudEvents.url") -}}
{{- range $name, $h := .Values.cloudEvents.headers -}}
{{- /* Header names are case-insensitive: two spellings of one would be one variable, one header. */ -}}
{{- $v := merge (dict) $h (dict "existingSecretKey" (lower $name)) -}}
{{- $env := printf "TOKENMETER_CLOUDEVENTS_HEADER_%s" ($name | upper | replace "-" "_") -}}
{{- $all = append $all (dict "env" $env "v" $v "what" (printf "cloudEvents.headers.%s" $name) "header" $name) -}}
{{- end -}}
{{- $out := list -}}
{{- $envs := dict -}}
{{- $keys := dict -}}
{{- range $all -}}
{{- if and .v.existingSecret .v.value -}}
{{- fail (printf "%s: set existingSecret or value, not both" .what) -}}
{{- end -}}
{{- if or .v.existingSecret .v.value -}}
{{- if hasKey $envs .env -}}
{{- fail (printf "%s and %s: one header twice (names are case-insensitive)" (get $envs .env) .what) -}}
{{- end -}}
{{- $_ := set $envs .env .what -}}
{{- if .v.value -}}
{{- /* The chart's one Secret keeps each value under its existingSecretKey: a second would replace the first. */ -}}
{{- if hasKey $keys .v.existingSecretKey -}}
{{- fail (printf "%s and %s: both keep their value under %q in the chart's Secret: give one another existingSecretKey"
  (get $keys .v.existingSecretKey) .what .v.existingSecretKey) -}}
{{- end -}}
{{- $_ := set $keys .v.existingSecretKey .what -}}
{{- end -}}
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
  "ledger.type" "ledger.type"
  "ledger.postgres.dsn_env" "ledger.postgres"
  "ledger.postgres.spool_dir" "ledger.sizeLimit or persistence.size (the spool is in the ledger's directory)"
  "ledger.cloudevents.url" "cloudEvents.url"
  "ledger.cloudevents.url_env" "cloudEvents.url"
  "ledger.cloudevents.headers_env" "cloudEvents.headers"
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
{{- $_ := set $owned "ledger" (fromJson (include "tokenmeter.ledger" .)) -}}
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

{{/*
The ledger keys the chart owns, as JSON: where the ledger is (a Postgres ledger's spool defaults to the directory's
spool/, so it is on the pod's volume too), the DSN's variable, and the CloudEvents endpoint's and headers' variables.
The rest of each section (retention, max_conns, source, subject...) comes from the user's config.
*/}}
{{- define "tokenmeter.ledger" -}}
{{- $l := .Values.ledger -}}
{{- if and (eq $l.type "postgres") (not $l.enabled) -}}
{{- fail "ledger.type postgres keeps a ledger and ledger.enabled false keeps none: choose one" -}}
{{- end -}}
{{- $ledger := dict "type" $l.type "dir" (ternary "/var/lib/tokenmeter/ledger" "" $l.enabled) -}}
{{- $url := "" -}}
{{- $headers := dict -}}
{{- range fromJsonArray (include "tokenmeter.secretEnvs" .) -}}
{{- if eq .env "TOKENMETER_LEDGER_DSN" -}}
{{- $_ := set $ledger "postgres" (dict "dsn_env" .env) -}}
{{- else if eq .env "TOKENMETER_CLOUDEVENTS_URL" -}}
{{- $url = .env -}}
{{- else if .header -}}
{{- $_ := set $headers .header .env -}}
{{- end -}}
{{- end -}}
{{- if and (eq $l.type "postgres") (not (hasKey $ledger "postgres")) -}}
{{- fail "ledger.type postgres needs the DSN: set ledger.postgres.existingSecret or ledger.postgres.value" -}}
{{- end -}}
{{- if and (ne $l.type "postgres") (hasKey $ledger "postgres") -}}
{{- /* Set and unused, the DSN would leave each pod on a ledger of its own without a word. */ -}}
{{- fail (printf "ledger.postgres: a DSN is set but ledger.type is %s: set ledger.type postgres, or leave it out"
  $l.type) -}}
{{- end -}}
{{- $user := get .Values.config "ledger" -}}
{{- $userCE := and (kindIs "map" $user) (hasKey $user "cloudevents") -}}
{{- if $userCE -}}
{{- $v := get $user "cloudevents" -}}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v)) -}}
{{- fail "config.ledger.cloudevents: want a mapping (source, subject, batch_size...: docs/config.md)" -}}
{{- end -}}
{{- end -}}
{{- if $url -}}
{{- $ce := dict "url_env" $url -}}
{{- if $headers -}}{{- $_ := set $ce "headers_env" $headers -}}{{- end -}}
{{- $_ := set $ledger "cloudevents" $ce -}}
{{- else if $headers -}}
{{- fail (print "cloudEvents.headers: no cloudEvents.url to send them to: "
  "set cloudEvents.url.existingSecret or cloudEvents.url.value") -}}
{{- else if $userCE -}}
{{- fail "config.ledger.cloudevents needs the endpoint: set cloudEvents.url.existingSecret or cloudEvents.url.value" -}}
{{- end -}}
{{- if and (eq $l.type "postgres") (include "tokenmeter.shared" .) -}}
{{- include "tokenmeter.spoolFits" (dict "limit" $l.sizeLimit "user" $user) -}}
{{- end -}}
{{- toJson $ledger -}}
{{- end -}}

{{/*
With the Deployment, a Postgres ledger's spool is all its emptyDir holds, and the kubelet evicts a pod whose emptyDir
outgrows sizeLimit: the spool would be lost when it matters, while Postgres is away. So the spool's bound
(ledger.postgres.spool_max_mb; 1024, pgstore.DefaultSpoolMaxBytes, when unset) must stay under the limit. Float math
on a size, never on money.
*/}}
{{- define "tokenmeter.spoolFits" -}}
{{- $mb := 1024 -}}
{{- if kindIs "map" .user -}}
{{- $pg := get .user "postgres" -}}
{{- if and (kindIs "map" $pg) (hasKey $pg "spool_max_mb") -}}
{{- $mb = get $pg "spool_max_mb" -}}
{{- end -}}
{{- end -}}
{{- $limit := toString .limit -}}
{{- $bytes := 0.0 -}}
{{- if kindIs "string" .limit -}}
{{- $num := regexFind "^[0-9.]+" $limit -}}
{{- $units := dict "" 1 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18
  "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 -}}
{{- $unit := trimPrefix $num $limit -}}
{{- if and $num (hasKey $units $unit) -}}
{{- $bytes = mulf $num (get $units $unit) -}}
{{- end -}}
{{- else -}}
{{- /* A bare number (the schema allows one) is bytes, a float64 that toString would write as 2e+09. */ -}}
{{- $bytes = float64 .limit -}}
{{- end -}}
{{- if and $bytes (ge (mulf $mb 1048576) $bytes) -}}
{{- fail (printf "ledger.sizeLimit %s: the emptyDir holding the Postgres spool (%v MiB, config.ledger.postgres.%s) %s"
  $limit $mb "spool_max_mb" "must be larger: the kubelet evicts a pod over it, spool and all") -}}
{{- end -}}
{{- end -}}

{{/*
The pod, the same for the StatefulSet (embedded store) and the Deployment (shared store). Its volume "data" holds
the Badger counters and the ledger (or a Postgres ledger's spool) under /var/lib/tokenmeter: the StatefulSet's claim,
or an emptyDir.
*/}}
{{- define "tokenmeter.pod" -}}
metadata:
  labels:
    {{- include "tokenmeter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $secret := include (print .Template.BasePath "/secret.yaml") . | trim }}
  {{- if or .Values.podAnnotations $secret }}
  annotations:
    {{- /* Secrets reach the pod as environment variables, read once at start: a new value needs new pods. */}}
    {{- if $secret }}
    checksum/secret: {{ $secret | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  serviceAccountName: {{ include "tokenmeter.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: tokenmeter
      image: {{ include "tokenmeter.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [serve, --config, /etc/tokenmeter/tokenmeter.yaml]
      ports:
        - {name: grpc, containerPort: {{ .Values.ports.grpc }}, protocol: TCP}
        - {name: admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP}
      {{- $envs := fromJsonArray (include "tokenmeter.secretEnvs" .) }}
      {{- if $envs }}
      env:
        {{- range $envs }}
        - name: {{ .env }}
          valueFrom:
            secretKeyRef:
              name: {{ default (include "tokenmeter.secretName" $) .v.existingSecret }}
              key: {{ .v.existingSecretKey }}
        {{- end }}
      {{- end }}
      startupProbe:
        grpc:
          port: {{ .Values.ports.grpc }}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: admin
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: admin
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/tokenmeter, readOnly: true}
        {{- if or (not (include "tokenmeter.shared" .)) .Values.ledger.enabled }}
        - {name: data, mountPath: /var/lib/tokenmeter}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "tokenmeter.fullname" . }}
    {{- if and (include "tokenmeter.shared" .) .Values.ledger.enabled }}
    - name: data
      emptyDir:
        sizeLimit: {{ .Values.ledger.sizeLimit }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
  {{- else if include "tokenmeter.shared" . }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "tokenmeter.selectorLabels" . | nindent 10 }}
  {{- end }}
{{- end -}}

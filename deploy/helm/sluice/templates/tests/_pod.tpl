{{/* A `helm test` pod running a shell script against the gateway's Service;
pass (list $ "name" "script"). */}}
{{- define "sluice.testPod" -}}
{{- $root := index . 0 -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "sluice.name" (list $root (printf "test-%s" (index . 1))) }}
  labels:
    {{- include "sluice.labels" (list $root "tests") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: check
      image: {{ printf "%s:%s" $root.Values.tests.image.repository $root.Values.tests.image.tag }}
      command: ["/bin/sh", "-ec", {{ index . 2 | quote }}]
      env:
        - name: GATEWAY
          value: http://{{ include "sluice.name" (list $root "gateway") }}:8080
        - name: TIMEOUT
          value: {{ $root.Values.tests.timeoutSeconds | quote }}
        - name: API_KEY
          valueFrom:
            secretKeyRef: {name: {{ include "sluice.secretName" $root }}, key: admin-api-key}
      resources:
        requests: {cpu: 10m, memory: 16Mi}
        limits: {memory: 64Mi}
      securityContext:
        {{- include "sluice.containerSecurity" $root | nindent 8 }}
{{- end -}}

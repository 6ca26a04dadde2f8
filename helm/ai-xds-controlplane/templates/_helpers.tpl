{{/*
Names, labels and the RBAC rules shared by the chart's templates.
*/}}

{{- define "controlplane.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name alone when it already contains the chart's name. */}}
{{- define "controlplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "controlplane.envoyName" -}}
{{- printf "%s-envoy" (include "controlplane.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "controlplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "controlplane.envoySelectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: envoy
{{- end -}}

{{- define "controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "controlplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the Envoy Pod mounts envoy.xdsTLS.secretName (beside, not inside, the bootstrap's ConfigMap). */}}
{{- define "controlplane.envoyXdsTlsDir" -}}
/etc/envoy-xds-tls
{{- end -}}

{{/* The control plane Service's in-cluster address, as Envoys reach it. */}}
{{- define "controlplane.xdsAddress" -}}
{{- printf "%s.%s.svc:%d" (include "controlplane.fullname" .) .Release.Namespace (int .Values.controller.xdsPort) -}}
{{- end -}}

{{/*
What the Kubernetes source reads in the namespaces it watches: exactly the kinds of
controlplane/sources/kubernetes/kinds.py (tests/test_helm_chart.py compares the two). Secrets and ConfigMaps
are listed and watched one by one, by name (a metadata.name field selector), never fetched otherwise.
Status is written through the status subresource of our three kinds, and of InferencePools (our own
per-Gateway entries) with the Inference Extension on.
*/}}
{{- define "controlplane.namespacedRules" -}}
- apiGroups: [aigateway.envoyproxy.io]
  resources: [aigatewayroutes, aiservicebackends, backendsecuritypolicies]
  verbs: [get, list, watch]
- apiGroups: [aigateway.envoyproxy.io]
  resources: [aigatewayroutes/status, aiservicebackends/status, backendsecuritypolicies/status]
  verbs: [patch, update]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, backendtlspolicies, referencegrants]
  verbs: [get, list, watch]
- apiGroups: [gateway.envoyproxy.io]
  resources: [backends, backendtrafficpolicies]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [list, watch]
{{- if .Values.controller.enableInferenceExtension }}
- apiGroups: [inference.networking.k8s.io, inference.networking.x-k8s.io]
  resources: [inferencepools]
  verbs: [get, list, watch]
- apiGroups: [inference.networking.k8s.io, inference.networking.x-k8s.io]
  resources: [inferencepools/status]
  verbs: [patch, update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
{{- end }}
{{- end -}}

{{/* Cluster-scoped kinds: GatewayClasses, and CRDs (a kind whose CRD is installed later is picked up). */}}
{{- define "controlplane.clusterRules" -}}
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end -}}

"""API group names and kinds that several model modules refer to, defined once."""

from __future__ import annotations

AIGATEWAY_GROUP = "aigateway.envoyproxy.io"
ENVOY_GATEWAY_GROUP = "gateway.envoyproxy.io"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
INFERENCE_GROUP = "inference.networking.k8s.io"
"""InferencePool v1 (GIE v1.0+), the only group AI Gateway v0.4+ accepts in a backendRef."""
INFERENCE_X_GROUP = "inference.networking.x-k8s.io"
"""InferencePool v1alpha2 and InferenceModel/Objective (GIE before v1.0; AI Gateway v0.3 backendRefs)."""
INFERENCE_POOL_KIND = "InferencePool"

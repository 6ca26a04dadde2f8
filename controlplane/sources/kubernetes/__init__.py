"""Watch a Kubernetes API server for the resources we translate and write each object's verdict as status."""

from controlplane.sources.kubernetes.leader import LeaseSettings
from controlplane.sources.kubernetes.source import KubernetesOptions, KubernetesSource

__all__ = ["KubernetesOptions", "KubernetesSource", "LeaseSettings"]

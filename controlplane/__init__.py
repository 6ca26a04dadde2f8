"""An Envoy xDS control plane for AI inference routing.

Pipeline: sources (files, Kubernetes) -> typed resources -> translator -> snapshot cache -> gRPC xDS server.
"""

"""Prometheus metrics of the xDS server, in a registry of its own.

Each `XdsServer` owns a `CollectorRegistry` (not the process-wide default) so that several servers in one
process, as in tests, never share or clash on counters; the admin HTTP server exposes that registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Push-to-ACK on loopback is sub-millisecond; across a fleet with large snapshots it can take seconds.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class XdsMetrics:
    """The server's counters; label ``type`` is the short resource type (``Cluster``, ``Listener``, ...)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.connected_proxies = Gauge(
            "xds_connected_proxies",
            "ADS streams whose proxy has identified itself, by protocol variant.",
            ["mode"],
            registry=self.registry,
        )
        self.pushes = Counter(
            "xds_pushes", "Discovery responses sent.", ["type", "mode"], registry=self.registry
        )
        self.resources_sent = Counter(
            "xds_resources_sent",
            "Resources carried by discovery responses (removals not included).",
            ["type", "mode"],
            registry=self.registry,
        )
        self.acks = Counter(
            "xds_acks", "Responses accepted by the proxy.", ["type", "mode"], registry=self.registry
        )
        self.nacks = Counter(
            "xds_nacks", "Responses rejected by the proxy.", ["type", "mode"], registry=self.registry
        )
        self.push_to_ack = Histogram(
            "xds_push_to_ack_seconds",
            "Time from sending a response to receiving its ACK or NACK.",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stale_requests = Counter(
            "xds_stale_requests",
            "Requests ignored because they answered an older response (state of the world).",
            ["type"],
            registry=self.registry,
        )
        self.stream_errors = Counter(
            "xds_stream_errors",
            "Streams ended with an error status, by gRPC status code.",
            ["code"],
            registry=self.registry,
        )

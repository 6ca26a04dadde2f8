"""InferencePools: their ready Pods as one least-request cluster, and the endpoint picker that chooses among
them for every request.

A pool with a picker (``endpointPickerRef`` / ``extensionRef``, a Service in the pool's namespace) gets an
HTTP/2 cluster to the picker: the Service's EndpointSlices, or the DNS name of an ExternalName Service; TLS
without certificate checks, as the reference picker serves a self-signed certificate by default, or
plaintext when the Service port says ``appProtocol: kubernetes.io/h2c``. Its Pods'
cluster honours the picked endpoint, restricted to the Pods. A pool without a picker is balanced by least
request. Both have outlier detection, so a Pod that keeps failing is skipped.

When the picker cannot be resolved (kind other than Service, Service or port missing), ``failureMode``
decides, as it would for a picker that is down: ``FailOpen`` serves the Pods without a picker,
``FailClose`` leaves the pool without its Pods. Either way the pool and every route using it say why.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane import ir
from controlplane.gatewayapi.credentials import CREDENTIAL_HEADERS
from controlplane.gatewayapi.failover import DEFAULT_OUTLIER
from controlplane.gatewayapi.report import Report
from controlplane.gatewayapi.upstreams import UpstreamResolver, service_endpoints
from controlplane.resources.inference import EndpointPicker, InferencePoolBase
from controlplane.resources.resource_set import ResourceSet

H2C_APP_PROTOCOL = "kubernetes.io/h2c"
"""A picker Service port with this ``appProtocol`` serves plaintext HTTP/2 (a picker run without TLS)."""


@dataclass(frozen=True, slots=True)
class PoolPods:
    """The pool's Pods cluster and the picker its hop asks; ``problems`` are what the routes are told."""

    cluster: str | None
    picker: ir.EndpointPicker | None
    problems: tuple[str, ...]
    fail_open: bool = False
    """With the picker down or erroring, serve the Pods without it (``failureMode: FailOpen``)."""


class PoolResolver:
    def __init__(self, *, resources: ResourceSet, report: Report, upstreams: UpstreamResolver) -> None:
        self._resources = resources
        self._report = report
        self._upstreams = upstreams

    def pods(self, pool: InferencePoolBase) -> PoolPods:
        endpoints = sorted(
            {
                ir.SocketEndpoint(address=pod.ip, port=port)
                for pod in self._resources.pods()
                if pod.ip is not None and pod.ready and pool.selects(pod.namespace, pod.metadata.labels)
                for port in pool.target_ports
            },
            key=lambda endpoint: (endpoint.address, endpoint.port),
        )
        if not endpoints:
            return PoolPods(cluster=None, picker=None, problems=())
        picker: ir.EndpointPicker | None = None
        problems: tuple[str, ...] = ()
        spec = pool.endpoint_picker
        if spec is not None:
            resolved = self._picker(pool, spec)
            if isinstance(resolved, str):
                self._report.unresolved(
                    pool, pool.endpoint_picker_path, resolved, reason="InvalidExtensionRef"
                )
                problems = (f"endpoint picker: {resolved}",)
                if spec.failure_mode == "FailClose":
                    return PoolPods(cluster=None, picker=None, problems=problems)
            else:
                picker = resolved
        name = f"inferencepool/{pool.namespace}/{pool.name}"
        self._upstreams.add(
            ir.UpstreamCluster(
                name=name,
                discovery=ir.DiscoveryType.EDS,
                endpoints=tuple(endpoints),
                balancing=ir.Balancing.LEAST_REQUEST,
                picked_endpoint=picker is not None,
                outlier=DEFAULT_OUTLIER,
                # v1's appProtocol: model servers that speak HTTP/2 without TLS.
                http2=pool.app_protocol == H2C_APP_PROTOCOL,
            )
        )
        fail_open = picker is not None and spec is not None and spec.failure_mode == "FailOpen"
        return PoolPods(cluster=name, picker=picker, problems=problems, fail_open=fail_open)

    def _picker(self, pool: InferencePoolBase, spec: EndpointPicker) -> ir.EndpointPicker | str:
        """The picker's cluster, or why there is none."""
        path = pool.endpoint_picker_path
        if (spec.group, spec.kind) != ("", "Service"):
            return f"{spec.group or 'core'}/{spec.kind} is not supported as {path}.kind (use a Service)"
        service = self._resources.service(pool.namespace, spec.name)
        if service is None:
            return f"Service {pool.namespace}/{spec.name} not found"
        service_port = service.port(spec.port)
        if service_port is None:
            return f"Service {pool.namespace}/{spec.name} has no port {spec.port}"
        name = f"endpointpicker/{pool.namespace}/{spec.name}/{spec.port}"
        external = service.spec.external_name if service.spec.type == "ExternalName" else None
        self._upstreams.add(
            ir.UpstreamCluster(
                name=name,
                discovery=ir.DiscoveryType.EDS if external is None else ir.DiscoveryType.DNS,
                # None ready (the picker restarting) is the picker being down: failureMode applies.
                endpoints=(
                    service_endpoints(self._resources, service, service_port)
                    if external is None
                    else (ir.SocketEndpoint(external, spec.port),)
                ),
                tls=(
                    None
                    if service_port.app_protocol == H2C_APP_PROTOCOL
                    else ir.UpstreamTls(sni="", verify_hostname=None, ca_secret=None, verify=False)
                ),
                http2=True,
            )
        )
        return ir.EndpointPicker(
            cluster=name,
            authority=f"{spec.name}.{pool.namespace}.svc:{spec.port}",
            withheld_headers=CREDENTIAL_HEADERS,
        )

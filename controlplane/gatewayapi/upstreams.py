"""Real destinations: Envoy Gateway Backends and Kubernetes Services as clusters (InferencePools: ``pools``).

Cluster names are derived from what they point at (``backend/<ns>/<name>``, ``service/<ns>/<name>/<port>``,
``inferencepool/<ns>/<name>``), so two AIServiceBackends on the same Backend share one cluster and its
connection pool. Hostnames become DNS clusters (Envoy resolves and re-resolves them); addresses are
delivered by EDS so an endpoint change never rebuilds a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane import ir
from controlplane.gatewayapi.fragments import Effect
from controlplane.gatewayapi.grants import denied_message, reference_allowed
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.registered import NamedTable, Registrations
from controlplane.gatewayapi.report import Report
from controlplane.resources.core import Service, ServicePort
from controlplane.resources.envoy_gateway import Backend
from controlplane.resources.gateway_api import BackendObjectReference, BackendTLSPolicy
from controlplane.resources.groups import ENVOY_GATEWAY_GROUP
from controlplane.resources.meta import Resource
from controlplane.resources.resource_set import ResourceSet


@dataclass(frozen=True, slots=True)
class Upstream:
    cluster: str
    hostname: str | None
    """The DNS name requests must carry as Host (hosted providers route and check certificates by it)."""


class UpstreamResolver:
    def __init__(self, *, resources: ResourceSet, report: Report, memo: TranslationMemo) -> None:
        self._resources = resources
        self._report = report
        self._memo = memo
        self._clusters: Registrations[ir.UpstreamCluster] = Registrations()
        self._ca_bundles: Registrations[ir.CaBundle] = Registrations()
        # Listed in name order from the last translation's lists (``registered``).
        self._cluster_table: NamedTable[ir.UpstreamCluster] = memo.carried("clusters", NamedTable)
        self._ca_bundle_table: NamedTable[ir.CaBundle] = memo.carried("CA bundles", NamedTable)
        self._tls_policies = _tls_policies_by_target(resources, report)

    @property
    def clusters(self) -> tuple[ir.UpstreamCluster, ...]:
        return self._cluster_table.values(self._clusters)

    @property
    def ca_bundles(self) -> tuple[ir.CaBundle, ...]:
        return self._ca_bundle_table.values(self._ca_bundles)

    def for_backend_ref(self, owner: Resource, ref: BackendObjectReference, path: str) -> Upstream | None:
        namespace = ref.namespace or owner.namespace
        if not reference_allowed(
            self._resources,
            source=owner,
            target_group=ref.group,
            target_kind=ref.kind,
            namespace=namespace,
            name=ref.name,
        ):
            message = denied_message(kind=ref.kind, namespace=namespace, name=ref.name)
            self._report.unresolved(owner, f"{path}.namespace", message)
            return None
        if ref.group == ENVOY_GATEWAY_GROUP and ref.kind == "Backend":
            backend = self._resources.eg_backend(namespace, ref.name)
            if backend is None:
                self._report.unresolved(owner, f"{path}.name", f"Backend {namespace}/{ref.name} not found")
                return None
            return self._backend(backend)
        if ref.group == "" and ref.kind == "Service":
            service = self._resources.service(namespace, ref.name)
            if service is None:
                self._report.unresolved(owner, f"{path}.name", f"Service {namespace}/{ref.name} not found")
                return None
            return self._service(owner, service, ref.port, path)
        self._report.reject(
            owner,
            f"{path}.kind",
            f"{ref.group or 'core'}/{ref.kind} is not a supported backend "
            "(use gateway.envoyproxy.io/Backend or a core Service)",
            reason="UnsupportedValue",
        )
        return None

    def add(self, cluster: ir.UpstreamCluster) -> None:
        """A cluster built elsewhere (an InferencePool's Pods or endpoint picker) joins the others."""
        self.replay(("register", "cluster", cluster.name, cluster))

    def replay(self, effect: Effect) -> None:
        """Registers a cluster or CA bundle (recorded for the memo, or replayed by it)."""
        self._memo.effect(effect)
        _, table, name, value = effect
        (self._clusters if table == "cluster" else self._ca_bundles).put(name, value)

    def register_all(self, table: str, entries: Mapping[Any, Any]) -> None:
        """Registers replayed clusters or CA bundles at once (not recorded: only the memo replays)."""
        (self._clusters if table == "cluster" else self._ca_bundles).put_all(entries)

    def _backend(self, backend: Backend) -> Upstream | None:
        self._report.consider(backend)
        name = f"backend/{backend.namespace}/{backend.name}"
        spec = backend.spec
        if spec.type != "Endpoints":
            self._report.reject(backend, "spec.type", f"{spec.type} backends are not supported yet")
            return None
        endpoints: list[ir.SocketEndpoint] = []
        hostname = None
        for index, endpoint in enumerate(spec.endpoints):
            if endpoint.fqdn is not None:
                hostname = hostname or endpoint.fqdn.hostname
                endpoints.append(ir.SocketEndpoint(endpoint.fqdn.hostname, endpoint.fqdn.port))
            elif endpoint.ip is not None:
                endpoints.append(ir.SocketEndpoint(endpoint.ip.address, endpoint.ip.port))
            else:
                self._report.reject(
                    backend, f"spec.endpoints[{index}].unix", "unix socket endpoints are not supported yet"
                )
                return None
        if not endpoints:
            self._report.reject(backend, "spec.endpoints", "a Backend needs at least one endpoint")
            return None
        if spec.tls is not None:
            self._report.warn(backend, "spec.tls", "not implemented yet; use a BackendTLSPolicy")
        tls = self._tls_for(backend, default_sni=hostname)
        cluster = ir.UpstreamCluster(
            name=name,
            discovery=ir.DiscoveryType.DNS if hostname is not None else ir.DiscoveryType.EDS,
            endpoints=tuple(endpoints),
            tls=tls,
        )
        self.replay(("register", "cluster", name, cluster))
        return Upstream(cluster=name, hostname=hostname)

    def _service(self, owner: Resource, service: Service, port: int | None, path: str) -> Upstream | None:
        if port is None:
            self._report.reject(owner, f"{path}.port", "a Service reference needs a port")
            return None
        service_port = service.port(port)
        if service_port is None:
            self._report.unresolved(
                owner, f"{path}.port", f"Service {service.namespace}/{service.name} has no port {port}"
            )
            return None
        name = f"service/{service.namespace}/{service.name}/{port}"
        cluster = ir.UpstreamCluster(
            name=name,
            discovery=ir.DiscoveryType.EDS,
            endpoints=service_endpoints(self._resources, service, service_port),
            tls=self._tls_for(service, default_sni=None),
        )
        self.replay(("register", "cluster", name, cluster))
        return Upstream(cluster=name, hostname=None)

    def _tls_for(self, target: Resource, *, default_sni: str | None) -> ir.UpstreamTls | None:
        self._resources.uses_all(BackendTLSPolicy)
        policy = self._tls_policies.get(target.key)
        if policy is None:
            return None
        validation = policy.spec.validation
        ca_secret = None
        for index, ref in enumerate(validation.ca_certificate_refs):
            config_map = self._resources.config_map(policy.namespace, ref.name)
            pem = config_map.data.get("ca.crt") if config_map is not None else None
            if ref.kind != "ConfigMap" or pem is None:
                self._report.unresolved(
                    policy,
                    f"spec.validation.caCertificateRefs[{index}]",
                    f"ConfigMap {policy.namespace}/{ref.name} with key ca.crt not found",
                )
                continue
            ca_secret = f"ca/{policy.namespace}/{ref.name}"
            self.replay(("register", "ca", ca_secret, ir.CaBundle(name=ca_secret, pem=pem)))
            break
        return ir.UpstreamTls(
            sni=validation.hostname or default_sni or "",
            verify_hostname=validation.hostname,
            ca_secret=ca_secret,
        )


def service_endpoints(
    resources: ResourceSet, service: Service, service_port: ServicePort
) -> tuple[ir.SocketEndpoint, ...]:
    """The ready endpoints behind one port of a Service (its EndpointSlices), sorted; its cluster IP when it
    has no EndpointSlices (a file-only setup: the virtual IP still reaches it in a cluster)."""
    endpoints: set[ir.SocketEndpoint] = set()
    for endpoint_slice in resources.endpoint_slices_for(service.namespace, service.name):
        target = next(
            (p.port for p in endpoint_slice.ports if p.port is not None and p.name == service_port.name),
            None,
        )
        if target is None:
            continue
        endpoints.update(
            ir.SocketEndpoint(address, target)
            for endpoint in endpoint_slice.endpoints
            if endpoint.ready
            for address in endpoint.addresses
        )
    cluster_ip = service.spec.cluster_ip
    if not endpoints and cluster_ip and cluster_ip != "None":
        endpoints.add(ir.SocketEndpoint(cluster_ip, service_port.port))
    return tuple(sorted(endpoints, key=lambda e: (e.address, e.port)))


def _tls_policies_by_target(resources: ResourceSet, report: Report) -> dict[object, BackendTLSPolicy]:
    """The BackendTLSPolicy for each target; on a conflict the first by namespace/name wins (reported)."""
    chosen: dict[object, BackendTLSPolicy] = {}
    for policy in resources.backend_tls_policies():
        report.consider(policy)
        for index, ref in enumerate(policy.spec.target_refs):
            if (ref.group, ref.kind) == (ENVOY_GATEWAY_GROUP, "Backend"):
                key = Backend.key_for(policy.namespace, ref.name)
            elif (ref.group, ref.kind) == ("", "Service"):
                key = Service.key_for(policy.namespace, ref.name)
            else:
                report.reject(
                    policy, f"spec.targetRefs[{index}]", f"{ref.group}/{ref.kind} is not a supported target"
                )
                continue
            if key in chosen:
                report.reject(
                    policy,
                    f"spec.targetRefs[{index}]",
                    f"{key} already has BackendTLSPolicy {chosen[key].namespace}/{chosen[key].name}",
                    reason="Conflicted",
                )
                continue
            chosen[key] = policy
    return chosen

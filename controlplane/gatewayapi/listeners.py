"""Gateways -> Envoy listeners, and which listeners (and hostnames) each route attaches to.

One Envoy listener serves each port; Gateway listeners that share a port become virtual hosts of it. With
no Gateway at all (a folder of routes run locally) every route attaches to one default listener, so a
user's route manifests work without writing a Gateway first.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIGatewayRoute
from controlplane.resources.gateway_api import Gateway, GatewayClass
from controlplane.resources.resource_set import ResourceSet

_SUPPORTED_PROTOCOLS = frozenset({"HTTP"})


@dataclass(frozen=True, slots=True)
class ListenerSlot:
    """One Gateway listener (or the default one): a port and an optional hostname."""

    envoy_listener: str
    port: int
    hostname: str | None
    gateway: Gateway | None
    section_name: str | None


@dataclass(frozen=True, slots=True)
class Attachment:
    slot: ListenerSlot
    domains: tuple[str, ...]


class ListenerBinder:
    def __init__(
        self,
        *,
        resources: ResourceSet,
        report: Report,
        default_port: int,
        controller_name: str,
        require_gateway_class: bool,
    ) -> None:
        self._report = report
        self._resources = resources
        self._controller_name = controller_name
        self._require_gateway_class = require_gateway_class
        self._not_ours: dict[tuple[str, str], str] = {}
        gateways = [gateway for gateway in resources.gateways() if self._is_ours(gateway)]
        self.our_gateways = frozenset(gateway.key for gateway in gateways)
        self.default_mode = not resources.gateways() and not require_gateway_class
        self.slots = (
            [ListenerSlot(f"default/{default_port}", default_port, None, None, None)]
            if self.default_mode
            else self._gateway_slots(gateways)
        )

    def attach(self, route: AIGatewayRoute) -> list[Attachment]:
        # The slots (and which Gateways are ours) come from every Gateway and GatewayClass.
        self._resources.uses_all(Gateway)
        self._resources.uses_all(GatewayClass)
        if self.default_mode:
            return [Attachment(self.slots[0], _domains(route.spec.hostnames, None) or ("*",))]
        if not route.spec.parent_refs:
            self._report.unresolved(route, "spec.parentRefs", "the route names no Gateway to attach to")
            return []
        attachments: list[Attachment] = []
        for index, ref in enumerate(route.spec.parent_refs):
            path = f"spec.parentRefs[{index}]"
            namespace = ref.namespace or route.namespace
            if ref.kind != "Gateway" or self._resources.gateway(namespace, ref.name) is None:
                self._report.unresolved(route, f"{path}.name", f"{ref.kind} {namespace}/{ref.name} not found")
                continue
            not_ours = self._not_ours.get((namespace, ref.name))
            if not_ours is not None:
                self._report.unresolved(route, f"{path}.name", f"Gateway {namespace}/{ref.name} {not_ours}")
                continue
            candidates = [
                slot
                for slot in self.slots
                if slot.gateway is not None
                and (slot.gateway.namespace, slot.gateway.name) == (namespace, ref.name)
                and (ref.section_name is None or slot.section_name == ref.section_name)
                and (ref.port is None or slot.port == ref.port)
                and _allows(slot.gateway, slot.section_name, route)
            ]
            found = [
                Attachment(slot, domains)
                for slot in candidates
                if (domains := _domains(route.spec.hostnames, slot.hostname))
            ]
            if not found:
                self._report.unresolved(
                    route, path, f"no listener of Gateway {namespace}/{ref.name} accepts this route"
                )
            attachments.extend(found)
        return attachments

    def _is_ours(self, gateway: Gateway) -> bool:
        """A Gateway is ours when its GatewayClass names our controller. Without the class object (a folder
        of manifests run locally) it is ours unless the class is required, as it is in a cluster, where
        other controllers' Gateways are not ours to program (nor to report on)."""
        class_name = gateway.spec.gateway_class_name
        gateway_class = self._resources.gateway_class(class_name)
        if gateway_class is None:
            if not self._require_gateway_class:
                return True
            reason = f"has GatewayClass {class_name}, which does not exist"
        elif gateway_class.spec.controller_name != self._controller_name:
            reason = f"belongs to controller {gateway_class.spec.controller_name} (GatewayClass {class_name})"
        else:
            return True
        self._not_ours[(gateway.namespace, gateway.name)] = reason
        return False

    def _gateway_slots(self, gateways: list[Gateway]) -> list[ListenerSlot]:
        slots: list[ListenerSlot] = []
        owner_of_port: dict[int, Gateway] = {}
        for gateway in gateways:
            self._report.consider(gateway)
            for index, listener in enumerate(gateway.spec.listeners):
                path = f"spec.listeners[{index}]"
                if listener.protocol not in _SUPPORTED_PROTOCOLS:
                    self._report.reject(
                        gateway, f"{path}.protocol", f"{listener.protocol} listeners are not supported yet"
                    )
                    continue
                owner = owner_of_port.setdefault(listener.port, gateway)
                if owner is not gateway:
                    self._report.reject(
                        gateway,
                        f"{path}.port",
                        f"port {listener.port} is already used by Gateway {owner.namespace}/{owner.name}",
                        reason="Conflicted",
                    )
                    continue
                slots.append(
                    ListenerSlot(
                        envoy_listener=f"gateway/{gateway.namespace}/{gateway.name}/{listener.port}",
                        port=listener.port,
                        hostname=listener.hostname,
                        gateway=gateway,
                        section_name=listener.name,
                    )
                )
        return slots


def _allows(gateway: Gateway, section_name: str | None, route: AIGatewayRoute) -> bool:
    listener = next(item for item in gateway.spec.listeners if item.name == section_name)
    policy = listener.allowed_routes.namespaces.from_
    return policy == "All" or (policy == "Same" and route.namespace == gateway.namespace)


def _domains(route_hostnames: list[str], listener_hostname: str | None) -> tuple[str, ...]:
    """Gateway API hostname intersection; empty when the route and the listener share no hostname."""
    if not route_hostnames:
        return (listener_hostname or "*",)
    if listener_hostname is None:
        return tuple(sorted(set(route_hostnames)))
    matched = {
        _more_specific(hostname, listener_hostname)
        for hostname in route_hostnames
        if _covers(listener_hostname, hostname) or _covers(hostname, listener_hostname)
    }
    return tuple(sorted(matched))


def _covers(pattern: str, hostname: str) -> bool:
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


def _more_specific(first: str, second: str) -> str:
    return second if first.startswith("*.") and not second.startswith("*.") else first

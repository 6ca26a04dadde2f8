"""The whole pure pipeline in one call: resources -> IR -> Envoy messages, with a status per object.

Both the ``translate`` command and the running server go through here, so what ``translate`` prints is
exactly what Envoy is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.gatewayapi import ObjectStatus, TranslateOptions, translate_resources
from controlplane.resources.problems import ObjectKey, Problem
from controlplane.resources.resource_set import ResourceSet
from controlplane.xds.cache import Snapshot
from controlplane.xds.translator import EnvoyResources, build_resources

__all__ = ["TranslateOptions", "Translation", "translate"]


@dataclass(frozen=True, slots=True)
class Translation:
    envoy: EnvoyResources
    statuses: dict[ObjectKey, ObjectStatus]
    problems: list[Problem]

    def snapshot(self) -> Snapshot:
        return Snapshot.from_resources(
            listeners=self.envoy.listeners,
            routes=self.envoy.routes,
            clusters=self.envoy.clusters,
            endpoints=self.envoy.endpoints,
            secrets=self.envoy.secrets,
        )


def translate(resources: ResourceSet, *, options: TranslateOptions | None = None) -> Translation:
    gateway = translate_resources(resources, options=options or TranslateOptions())
    return Translation(
        envoy=build_resources(gateway.infra), statuses=gateway.statuses, problems=gateway.problems
    )

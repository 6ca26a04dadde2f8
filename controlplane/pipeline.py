"""The whole pure pipeline in one call: resources -> IR -> Envoy messages, with a status per object.

Both the ``translate`` command and the running server go through here, so what ``translate`` prints is
exactly what Envoy is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.gatewayapi import ObjectStatus, TranslateOptions, build_ir
from controlplane.resources.problems import ObjectKey, Problem
from controlplane.resources.resource_set import ResourceSet
from controlplane.xds.cache import Snapshot
from controlplane.xds.translator import EnvoyResources, build_xds

__all__ = ["PipelineResult", "TranslateOptions", "translate"]


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """The Envoy configuration for a set of resources, and what was found about each input object."""

    envoy: EnvoyResources
    statuses: dict[ObjectKey, ObjectStatus]
    problems: list[Problem]

    def snapshot(self) -> Snapshot:
        """The Envoy resources as one snapshot, ready for ``SnapshotCache.set_snapshot``."""
        return Snapshot.from_resources(
            listeners=self.envoy.listeners,
            routes=self.envoy.routes,
            clusters=self.envoy.clusters,
            endpoints=self.envoy.endpoints,
            secrets=self.envoy.secrets,
        )


def translate(resources: ResourceSet, *, options: TranslateOptions | None = None) -> PipelineResult:
    """Accepted input objects in, Envoy resources plus a status and problems per object out.

    Pure and deterministic: ``build_ir`` (Gateway API side), then ``build_xds`` (Envoy side). An object with
    problems loses only itself; the rest is translated.
    """
    built = build_ir(resources, options=options or TranslateOptions())
    return PipelineResult(envoy=build_xds(built.infra), statuses=built.statuses, problems=built.problems)

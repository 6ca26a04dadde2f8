"""The whole pure pipeline in one call: resources -> IR -> Envoy messages, with a status per object.

Both the ``translate`` command and the running server go through here, so what ``translate`` prints is
exactly what Envoy is sent. The server keeps one ``Translator`` for its lifetime, which recomputes only
what a change affects: the parts of the IR whose inputs did not change are replayed (``gatewayapi.memo``)
and Envoy resources whose IR did not change are reused (``xds.translator.reuse``). Its snapshots, statuses
and problems equal those of a fresh ``translate`` of the same input (tests/test_pipeline_incremental.py
checks that on random edit sequences).
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.gatewayapi import ObjectStatus, TranslateOptions, build_ir
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.resources.problems import ObjectKey, Problem
from controlplane.resources.resource_set import ResourceSet
from controlplane.tokens.requests import MintRequest
from controlplane.xds.cache import Snapshot
from controlplane.xds.translator import EnvoyResources, build_xds
from controlplane.xds.translator.reuse import ReusingTranslator

__all__ = ["PipelineResult", "TranslateOptions", "TranslatedSnapshot", "Translator", "translate"]


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


@dataclass(frozen=True, slots=True)
class TranslatedSnapshot:
    """A load's snapshot, with the status and problems of each object (as ``translate`` reports them)."""

    snapshot: Snapshot
    statuses: dict[ObjectKey, ObjectStatus]
    problems: list[Problem]
    mint_requests: dict[ObjectKey, MintRequest]
    """The access tokens this configuration needs minted, per policy (``controlplane.tokens``)."""


class Translator:
    """``translate`` followed by ``snapshot()``, for a sequence of loads: what did not change since the
    previous load is reused rather than computed again (``reuse=False`` computes everything each time, the
    baseline the benchmarks compare with)."""

    def __init__(self, *, options: TranslateOptions | None = None, reuse: bool = True) -> None:
        self._options = options or TranslateOptions()
        self._reuse = ReusingTranslator() if reuse else None
        self._memo = TranslationMemo() if reuse else None
        self._previous: Snapshot | None = None

    def snapshot(self, resources: ResourceSet) -> TranslatedSnapshot:
        if self._reuse is None:
            # A translator with nothing to reuse: everything built again, recording nothing for a next load.
            built = build_ir(resources, options=self._options)
            translator = ReusingTranslator()
            snapshot = Snapshot.from_built(translator.resources(built.infra))
            translated = TranslatedSnapshot(snapshot, built.statuses, built.problems, built.mint_requests)
            del built  # its IR is still the translator's, which lets go of it a node at a time
            translator.release()
            return translated
        built = build_ir(resources, options=self._options, memo=self._memo)
        snapshot = Snapshot.from_built(self._reuse.resources(built.infra), previous=self._previous)
        self._previous = snapshot
        return TranslatedSnapshot(snapshot, built.statuses, built.problems, built.mint_requests)

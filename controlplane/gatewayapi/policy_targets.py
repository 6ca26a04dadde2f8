"""Which BackendSecurityPolicy applies to each target (an AIServiceBackend or InferencePool), kept from one
translation to the next.

The rules: the first policy in input order whose ``targetRefs`` names a target applies to it, and every later
one naming it is rejected (``Conflicted``); then an AIServiceBackend naming a policy the legacy way
(``backendSecurityPolicyRef``) gets that policy unless ``targetRefs`` already gave it another. Going through
every policy and backend for each translation costs tens of milliseconds at thousands of them, on every
change anywhere; ``PolicyTargets.update`` instead re-files only the policies and backends that are not the
very objects it was given last time (found by identity, in C), so a change costs what changed. Its findings
(the conflicts, the legacy references to nothing) are made again each time from what it keeps, in the order
going through everything makes them. A fresh ``PolicyTargets`` (``translate``, or the first translation)
files everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import is_
from typing import TypeVar

from controlplane.gatewayapi.report import Report
from controlplane.replaced import replaced_positions
from controlplane.resources.aigateway import AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet

TargetKey = tuple[str, str, str]
"""(kind, namespace, name): InferencePool targets match either pool version, so the group is left out."""

_O = TypeVar("_O")


def target_key(kind: str, namespace: str, name: str) -> TargetKey:
    return (kind, namespace, name)


class PolicyTargets:
    """The policy of each target for the policies and AIServiceBackends last given to ``update``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Nothing filed: the next ``update`` files everything."""
        self._policies: tuple[BackendSecurityPolicy, ...] = ()
        self._backends: tuple[AIServiceBackend, ...] = ()
        self._keys: frozenset[ObjectKey] = frozenset()
        """The policies' keys: all of them are judged (the same set as long as they are the same, which the
        report then does not count again: ``judged.JudgedKeys``)."""
        self._claimants: dict[TargetKey, dict[int, BackendSecurityPolicy]] = {}
        """The policies whose ``targetRefs`` name each target, by ``id``."""
        self._chosen: dict[TargetKey, BackendSecurityPolicy] = {}
        """Each named target's policy by ``targetRefs``: its first claimant."""
        self._conflicted: set[TargetKey] = set()
        """The targets with more than one claimant."""
        self._legacy: dict[int, AIServiceBackend] = {}
        """The AIServiceBackends naming a policy the legacy way, by ``id``."""
        self._positions: dict[int, int] | None = None
        """Each policy's place in input order, by ``id``: made when a conflict needs it."""

    def update(
        self,
        policies: Sequence[BackendSecurityPolicy],
        backends: Sequence[AIServiceBackend],
        *,
        resources: ResourceSet,
        report: Report,
    ) -> dict[TargetKey, BackendSecurityPolicy]:
        """Each target's policy for ``policies`` and ``backends`` (in input order), reporting to ``report``
        what going through all of them finds: every policy judged, the conflicts, the legacy references to
        no policy."""
        try:
            self._file_policies(tuple(policies))
            self._file_backends(tuple(backends))
        except BaseException:
            self._reset()  # half filed
            raise
        report.judged(self._keys)
        self._report_conflicts(report)
        if not self._legacy:
            return self._chosen
        return self._with_legacy(resources, report)

    def _file_policies(self, policies: tuple[BackendSecurityPolicy, ...]) -> None:
        changes = _replaced(self._policies, policies)
        if changes is None:
            self._reset()  # reordered: filed afresh, backends too
            changes = ((), policies)
        removed, added = changes
        self._policies = policies
        if not removed and not added:
            return
        self._positions = None
        gone, came = {policy.key for policy in removed}, {policy.key for policy in added}
        if gone != came:  # not only policies given again under their keys
            self._keys = self._keys.difference(gone).union(came)
        touched: set[TargetKey] = set()
        for policy in removed:
            for target in _named(policy):
                claimants = self._claimants[target]
                claimants.pop(id(policy), None)
                touched.add(target)
        for policy in added:
            for target in _named(policy):
                self._claimants.setdefault(target, {})[id(policy)] = policy
                touched.add(target)
        for target in touched:
            self._choose(target)

    def _choose(self, target: TargetKey) -> None:
        claimants = self._claimants.get(target)
        self._conflicted.discard(target)
        if not claimants:
            self._claimants.pop(target, None)
            self._chosen.pop(target, None)
            return
        if len(claimants) == 1:
            (self._chosen[target],) = claimants.values()
            return
        self._conflicted.add(target)
        positions = self._policy_positions()
        self._chosen[target] = min(claimants.values(), key=lambda policy: positions[id(policy)])

    def _policy_positions(self) -> dict[int, int]:
        if self._positions is None:
            self._positions = {id(policy): index for index, policy in enumerate(self._policies)}
        return self._positions

    def _file_backends(self, backends: tuple[AIServiceBackend, ...]) -> None:
        changes = _replaced(self._backends, backends)
        removed, added = ((), backends) if changes is None else changes
        if changes is None:
            self._legacy = {}
        self._backends = backends
        for backend in removed:
            self._legacy.pop(id(backend), None)
        for backend in added:
            if backend.spec.backend_security_policy_ref is not None:
                self._legacy[id(backend)] = backend

    def _report_conflicts(self, report: Report) -> None:
        if not self._conflicted:
            return
        positions = self._policy_positions()
        losers: list[tuple[int, int, BackendSecurityPolicy, TargetKey]] = []
        for target in self._conflicted:
            chosen = self._chosen[target]
            for policy in self._claimants[target].values():
                if policy.key == chosen.key:
                    continue
                for index, ref in enumerate(policy.spec.target_refs):
                    if target_key(ref.kind, policy.namespace, ref.name) == target:
                        losers.append((positions[id(policy)], index, policy, target))
        losers.sort(key=lambda loser: loser[:2])
        for _, index, policy, target in losers:
            _reject_conflict(report, policy, f"spec.targetRefs[{index}]", target, self._chosen[target])

    def _with_legacy(self, resources: ResourceSet, report: Report) -> dict[TargetKey, BackendSecurityPolicy]:
        """``targetRefs``' choices, then the legacy references in input order where those chose nothing."""
        chosen = dict(self._chosen)
        legacy = list(self._legacy.values())
        if len(legacy) > 1:
            positions = {id(backend): index for index, backend in enumerate(self._backends)}
            legacy.sort(key=lambda backend: positions[id(backend)])
        for backend in legacy:
            ref = backend.spec.backend_security_policy_ref
            assert ref is not None
            found = resources.find(BackendSecurityPolicy, backend.namespace, ref.name)
            if found is None:
                report.unresolved(
                    backend,
                    "spec.backendSecurityPolicyRef.name",
                    f"BackendSecurityPolicy {backend.namespace}/{ref.name} not found",
                )
                continue
            target = target_key(backend.kind, backend.namespace, backend.name)
            current = chosen.setdefault(target, found)
            if current.key != found.key:
                _reject_conflict(report, found, "spec.targetRefs", target, current)
        return chosen


def _named(policy: BackendSecurityPolicy) -> set[TargetKey]:
    return {target_key(ref.kind, policy.namespace, ref.name) for ref in policy.spec.target_refs}


def _reject_conflict(
    report: Report, policy: BackendSecurityPolicy, path: str, target: TargetKey, chosen: BackendSecurityPolicy
) -> None:
    report.reject(
        policy,
        path,
        f"{target[0]} {target[1]}/{target[2]} already uses BackendSecurityPolicy "
        f"{chosen.namespace}/{chosen.name}",
        reason="Conflicted",
    )


def _replaced(before: tuple[_O, ...], now: tuple[_O, ...]) -> tuple[Sequence[_O], Sequence[_O]] | None:
    """The objects of ``before`` that are not in ``now`` and those of ``now`` not in ``before`` (by
    identity); None when the objects in both are not in the same order."""
    if len(before) == len(now):
        moved = replaced_positions(before, now)
        return [before[index] for index in moved], [now[index] for index in moved]
    now_ids = set(map(id, now))
    before_ids = set(map(id, before))
    kept_before = [obj for obj in before if id(obj) in now_ids]
    kept_now = [obj for obj in now if id(obj) in before_ids]
    if not all(map(is_, kept_before, kept_now)):
        return None
    return [obj for obj in before if id(obj) not in now_ids], [
        obj for obj in now if id(obj) not in before_ids
    ]

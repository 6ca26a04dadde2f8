"""``PolicyTargets``, kept up to date from one set of policies and AIServiceBackends to the next, against
going through all of them afresh: the same policy for each target and the same findings in the same order,
over random sequences (policies naming the same targets, legacy references to policies there or not,
objects edited, added, removed and reordered); and a change re-files only what changed."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from controlplane.gatewayapi import policy_targets
from controlplane.gatewayapi.policy_targets import PolicyTargets, TargetKey, target_key
from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.parse import Loaded, load_text
from controlplane.resources.resource_set import ResourceSet
from tests.policy_manifests import api_key_policy

_NAMESPACE = "ns"
_BACKENDS = ["a0", "a1", "a2", "a3"]
_POLICIES = ["p0", "p1", "p2", "p3", "p4"]


def _backend_yaml(name: str, legacy: str | None) -> str:
    named = f"{{name: {legacy}, kind: BackendSecurityPolicy, group: aigateway.envoyproxy.io}}"
    ref = f"  backendSecurityPolicyRef: {named}\n" if legacy else ""
    return f"""apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: {name}, namespace: {_NAMESPACE}}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: b, kind: Backend, group: gateway.envoyproxy.io}}
{ref}"""


class _Objects:
    """One parsed object per document text: an unedited object stays the very same one, as in ``serve``."""

    def __init__(self) -> None:
        self._parsed: dict[str, Loaded] = {}

    def __call__(self, text: str) -> Loaded:
        if text not in self._parsed:
            loaded = load_text(text, file="f")
            assert loaded.ok, loaded.problems
            (self._parsed[text],) = loaded.objects
        return self._parsed[text]

    def texts_of(self, *given: Any) -> list[str]:
        """The documents of ``given`` objects (for a ``ResourceSet`` of them)."""
        chosen = {id(obj) for obj in given}
        return [text for text, loaded in self._parsed.items() if id(loaded.object) in chosen]

    def policy(self, name: str, targets: tuple[str, ...], key: int) -> BackendSecurityPolicy:
        found = self(api_key_policy(name, namespace=_NAMESPACE, targets=targets, secret=f"key{key}")).object
        assert isinstance(found, BackendSecurityPolicy)
        return found

    def backend(self, name: str, legacy: str | None) -> AIServiceBackend:
        found = self(_backend_yaml(name, legacy)).object
        assert isinstance(found, AIServiceBackend)
        return found


def _reference(
    policies: list[BackendSecurityPolicy],
    backends: list[AIServiceBackend],
    resources: ResourceSet,
    report: Report,
) -> dict[TargetKey, BackendSecurityPolicy]:
    """Every policy, then every backend, in order: what the translator did before ``PolicyTargets``."""
    chosen: dict[TargetKey, BackendSecurityPolicy] = {}

    def claim(key: TargetKey, policy: BackendSecurityPolicy, path: str) -> None:
        current = chosen.setdefault(key, policy)
        if current.key != policy.key:
            report.reject(
                policy,
                path,
                f"{key[0]} {key[1]}/{key[2]} already uses BackendSecurityPolicy "
                f"{current.namespace}/{current.name}",
                reason="Conflicted",
            )

    for policy in policies:
        report.consider(policy)
        for index, ref in enumerate(policy.spec.target_refs):
            claim(target_key(ref.kind, policy.namespace, ref.name), policy, f"spec.targetRefs[{index}]")
    for backend in backends:
        legacy = backend.spec.backend_security_policy_ref
        if legacy is None:
            continue
        found = resources.find(BackendSecurityPolicy, backend.namespace, legacy.name)
        if found is None:
            report.unresolved(
                backend,
                "spec.backendSecurityPolicyRef.name",
                f"BackendSecurityPolicy {backend.namespace}/{legacy.name} not found",
            )
            continue
        claim(target_key(backend.kind, backend.namespace, backend.name), found, "spec.targetRefs")
    return chosen


_POLICY = st.tuples(st.lists(st.sampled_from(_BACKENDS), max_size=3).map(tuple), st.integers(0, 1))
_STATE = st.tuples(
    st.permutations(_POLICIES),
    st.dictionaries(st.sampled_from(_POLICIES), _POLICY),
    st.dictionaries(st.sampled_from(_BACKENDS), st.one_of(st.none(), st.sampled_from([*_POLICIES, "gone"]))),
    st.permutations(_BACKENDS),
)


def _findings(report: Report) -> tuple[list[str], dict[Any, Any]]:
    """The problems, and a status per judged object."""
    return [problem.format() for problem in report.problems()], report.statuses().by_key


_REORDERED_AND_ADDED = [
    (("p0", "p1", "p2", "p3", "p4"), {"p0": (("a0",), 0), "p1": (("a0",), 0)}, {}, ("a0", "a1", "a2", "a3")),
    (
        ("p1", "p0", "p2", "p3", "p4"),
        {"p0": (("a0",), 0), "p1": (("a0",), 0), "p2": ((), 0)},
        {"a0": "p3", "a1": "p4"},
        ("a0", "a1", "a2", "a3"),
    ),
    (
        ("p1", "p0", "p2", "p3", "p4"),
        {"p1": (("a0",), 0), "p2": ((), 0)},
        {"a0": "p3", "a1": "p4"},
        _BACKENDS,
    ),
    (("p1", "p0", "p2", "p3", "p4"), {"p1": (("a0",), 0)}, {"a1": "p4", "a0": "p3"}, ("a1", "a0")),
]
"""Same objects in another order as objects come and go: the order decides which policy applies."""


@settings(max_examples=300, deadline=None)
@example(states=_REORDERED_AND_ADDED)
@given(states=st.lists(_STATE, min_size=1, max_size=8))
def test_kept_up_to_date_it_chooses_and_reports_as_going_through_everything(states: list[Any]) -> None:
    objects = _Objects()
    kept = PolicyTargets()
    for policy_order, policies, backends, backend_order in states:
        given_policies = [objects.policy(name, *policies[name]) for name in policy_order if name in policies]
        given_backends = [objects.backend(name, backends[name]) for name in backend_order if name in backends]
        resources = ResourceSet(objects(text) for text in objects.texts_of(*given_policies, *given_backends))
        expected_report, report = Report(source_of=lambda _: None), Report(source_of=lambda _: None)
        expected = _reference(given_policies, given_backends, resources, expected_report)
        chosen = kept.update(given_policies, given_backends, resources=resources, report=report)
        assert {target: policy.key for target, policy in chosen.items()} == {
            target: policy.key for target, policy in expected.items()
        }
        assert all(chosen[target] is policy for target, policy in expected.items())  # today's objects
        assert _findings(report) == _findings(expected_report)


def test_a_change_refiles_only_the_changed_policies(monkeypatch: Any) -> None:
    objects = _Objects()
    policies = [objects.policy(f"p{index}", (f"a{index}",), 0) for index in range(200)]
    backends = [objects.backend(f"a{index}", None) for index in range(200)]
    resources = ResourceSet([])
    kept = PolicyTargets()
    kept.update(policies, backends, resources=resources, report=Report(source_of=lambda _: None))
    filed: list[BackendSecurityPolicy] = []
    named = policy_targets._named

    def counted(policy: BackendSecurityPolicy) -> set[TargetKey]:
        filed.append(policy)
        return named(policy)

    monkeypatch.setattr(policy_targets, "_named", counted)
    edited = objects.policy("p7", ("a7", "a8"), 1)
    report = Report(source_of=lambda _: None)
    chosen = kept.update([*policies[:7], edited, *policies[8:]], backends, resources=resources, report=report)
    assert [policy.name for policy in filed] == ["p7", "p7"]  # the old object out, the new one in
    assert chosen[target_key("AIServiceBackend", _NAMESPACE, "a8")] is edited  # before p8 in input order
    assert [problem.message for problem in report.problems()] == [
        "AIServiceBackend ns/a8 already uses BackendSecurityPolicy ns/p7"
    ]

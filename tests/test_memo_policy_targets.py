"""A BackendSecurityPolicy change recomputes what the policy names (before or after the change), or what
names it the legacy way, not every backend: which policy applies to a target is recorded as a read of that
target, and a policy's change marks changed the targets it named and names. The server's translator then
gives what a fresh translation gives (tests/test_pipeline_incremental.py checks that on random edits). A
change elsewhere puts the unchanged policies' credentials in place with the backends using them, not one by
one."""

from __future__ import annotations

import pytest

from bench.manifests import NAMESPACE, gateway_manifests, route_yaml
from controlplane.gatewayapi import build_ir
from controlplane.gatewayapi.backends import BackendResolver
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.pipeline import TranslateOptions, Translator, translate
from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.xds.resource import TYPE_URLS
from tests.policy_manifests import api_key_policy

BACKENDS = 12


def _backend(index: int, *, legacy_policy: str | None = None) -> str:
    legacy = ""
    if legacy_policy:
        ref = f"{{name: {legacy_policy}, kind: BackendSecurityPolicy, group: aigateway.envoyproxy.io}}"
        legacy = f"  backendSecurityPolicyRef: {ref}\n"
    return f"""apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: b{index}, namespace: {NAMESPACE}}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: 18190}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: a{index}, namespace: {NAMESPACE}}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: b{index}, kind: Backend, group: gateway.envoyproxy.io}}
{legacy}"""


def _policy(name: str, *, targets: list[str], key: str = "keys") -> str:
    return api_key_policy(name, namespace=NAMESPACE, targets=targets, secret=key)


def _secret(name: str) -> str:
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {NAMESPACE}}}
stringData: {{apiKey: test-key-{name}}}
"""


def _documents(*, policies: dict[str, str], legacy: dict[int, str]) -> dict[str, str]:
    """One document per name: what a folder with one file per object would hand over."""
    documents = {"shared": gateway_manifests(10080), "keys": _secret("keys"), "other": _secret("other")}
    for index in range(BACKENDS):
        documents[f"backend{index}"] = _backend(index, legacy_policy=legacy.get(index))
        documents[f"route{index}"] = route_yaml(index, [f"a{index}"])
    documents.update(policies)
    return documents


def _load(documents: dict[str, str]) -> LoadResult:
    loaded = combine(load_text(text, file=name) for name, text in documents.items())
    assert loaded.ok, loaded.problems
    return loaded


CASES = {
    "a key changed": {"p": _policy("p", targets=["a1"], key="other")},
    "a target added": {"p": _policy("p", targets=["a1", "a2"])},
    "a target moved": {"p": _policy("p", targets=["a3"])},
    "a policy added": {"q": _policy("q", targets=["a4"])},
    "a conflicting policy added": {"q": _policy("q", targets=["a1"], key="other")},
}


@pytest.mark.parametrize("edit", CASES.values(), ids=CASES.keys())
def test_a_policy_change_recomputes_only_the_targets_it_names(edit: dict[str, str]) -> None:
    before = _documents(policies={"p": _policy("p", targets=["a1"])}, legacy={5: "legacy"})
    before["legacy"] = _policy("legacy", targets=[])
    after = {**before, **edit}
    options = TranslateOptions(listen_address="127.0.0.1")
    memo = TranslationMemo()
    previous = _load(before).resource_set()
    build_ir(previous, options=options, memo=memo)
    everything = memo.computed
    build_ir(_load(after).resource_set(previous=previous), options=options, memo=memo)
    # The policies changed, the backends they name before or after and the routes using those.
    assert 0 < memo.computed <= 2 * 3
    assert everything >= 2 * BACKENDS

    translator = Translator(options=options)
    translator.snapshot(_load(before).resource_set())
    incremental = translator.snapshot(_load(after).resource_set())
    fresh = translate(_load(after).resource_set(), options=options)
    assert incremental.statuses == fresh.statuses
    for type_url in TYPE_URLS:
        assert incremental.snapshot.get(type_url).keys() == fresh.snapshot().get(type_url).keys()


def test_a_policy_named_the_legacy_way_recomputes_the_backend_naming_it() -> None:
    before = _documents(policies={}, legacy={5: "legacy"})
    options = TranslateOptions(listen_address="127.0.0.1")
    memo = TranslationMemo()
    previous = _load(before).resource_set()
    build_ir(previous, options=options, memo=memo)
    after = {**before, "legacy": _policy("legacy", targets=[])}
    build_ir(_load(after).resource_set(previous=previous), options=options, memo=memo)
    assert 0 < memo.computed <= 3  # the policy, backend a5 and route r5


def test_a_change_elsewhere_uses_no_unchanged_policy_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backends' chunks are replayed whole, and the policy credentials they used are put in place with
    them at once rather than replayed use by use (each a look-up and a replay at thousands of policies)."""
    policies = {f"p{index}": _policy(f"p{index}", targets=[f"a{index}"]) for index in range(BACKENDS)}
    before = {
        name: load_text(text, file=name) for name, text in _documents(policies=policies, legacy={}).items()
    }
    # As the file source hands them over: the documents not edited keep their parsed objects.
    after = {**before, "route3": load_text(route_yaml(3, ["a3", "a4"]), file="route3")}
    options = TranslateOptions(listen_address="127.0.0.1")
    used_one_at_a_time: list[object] = []
    replay = BackendResolver.replay

    def counted(self: BackendResolver, effect: tuple[object, ...]) -> None:
        if effect[0] == "use" and isinstance(effect[1], tuple) and effect[1][0] == "policy":
            used_one_at_a_time.append(effect[1])
        replay(self, effect)

    translator = Translator(options=options)
    previous = combine(before.values()).resource_set()
    translator.snapshot(previous)
    monkeypatch.setattr(BackendResolver, "replay", counted)
    incremental = translator.snapshot(combine(after.values()).resource_set(previous=previous))
    assert used_one_at_a_time == []
    fresh = translate(combine(after.values()).resource_set(), options=options)
    assert incremental.statuses == fresh.statuses
    for type_url in TYPE_URLS:
        assert incremental.snapshot.get(type_url).keys() == fresh.snapshot().get(type_url).keys()

"""The publisher between a source and the snapshot cache: translation off the event loop, newest load wins.

In-process and real: real manifests (the examples), the real pipeline and a real ``SnapshotCache``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from controlplane.gatewayapi import IRResult, ObjectStatus, TranslateOptions, build_ir
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.pipeline import TranslatedSnapshot, Translator
from controlplane.refusals import ProxyRefusals
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.parse import LoadResult, load_text
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet
from controlplane.serving import SnapshotPublisher
from controlplane.sources.file_reading import load_paths
from controlplane.tokens.minting import Minted
from controlplane.tokens.requests import MintRequest
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.resource import CLUSTER, SECRET

EXAMPLES = Path(__file__).parent.parent / "examples"
MINTED_CASE = Path(__file__).parent / "testdata" / "translate" / "minted-credentials.in.yaml"


def _example(name: str) -> LoadResult:
    return load_paths([EXAMPLES / "gatewayclass.yaml", EXAMPLES / name])


def test_translation_runs_in_a_worker_thread_and_the_snapshot_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []

    def recording_build_ir(
        resources: ResourceSet, *, options: TranslateOptions, memo: TranslationMemo | None = None
    ) -> IRResult:
        threads.append(threading.current_thread())
        return build_ir(resources, options=options, memo=memo)

    monkeypatch.setattr("controlplane.pipeline.build_ir", recording_build_ir)
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache=cache, options=TranslateOptions(), refusals=ProxyRefusals())

    async def publish() -> threading.Thread:
        await publisher(_example("001-weighted-split"))
        return threading.current_thread()

    loop_thread = asyncio.run(publish())
    assert len(threads) == 1
    assert threads[0] is not loop_thread
    snapshot = cache.get_snapshot()
    assert snapshot is not None
    assert snapshot.version == publisher.board.snapshot_version
    assert snapshot.get(CLUSTER)


def test_loads_queued_behind_a_translation_are_covered_by_the_newest() -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache=cache, options=TranslateOptions(), refusals=ProxyRefusals())
    first = _example("001-weighted-split")
    older, newest = _example("002-inference-pool"), _example("003-model-failover")

    async def publish(*loads: LoadResult) -> list[Mapping[ObjectKey, ObjectStatus] | None]:
        return list(await asyncio.gather(*(publisher(load) for load in loads)))

    verdicts = asyncio.run(publish(first, older, newest))
    # The first is translated; the two that waited behind it are covered by one translation of the newest.
    assert publisher.board.loads == 2
    alone_cache = SnapshotCache()
    alone = SnapshotPublisher(cache=alone_cache, options=TranslateOptions(), refusals=ProxyRefusals())
    newest_alone = asyncio.run(alone(newest))
    assert verdicts[1] == verdicts[2] == newest_alone
    assert verdicts[0] != newest_alone
    published, expected = cache.get_snapshot(), alone_cache.get_snapshot()
    assert published is not None
    assert expected is not None
    assert published.version == expected.version


def test_a_translation_that_raises_keeps_the_last_configuration_and_the_next_load_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache=cache, options=TranslateOptions(), refusals=ProxyRefusals())
    translate = Translator.snapshot
    broken = [True]  # while set, a bug of ours trips on the model-failover route

    def snapshot_unless_broken(self: Translator, resources: ResourceSet) -> TranslatedSnapshot:
        if broken and any(route.name == "model-failover" for route in resources.routes()):
            raise RuntimeError("a bug the input reaches")
        return translate(self, resources)

    monkeypatch.setattr(Translator, "snapshot", snapshot_unless_broken)

    assert asyncio.run(publisher(_example("001-weighted-split")))
    served = cache.get_snapshot()
    assert served is not None
    # No exception (the source goes on watching) and no verdicts: the last load's are not this one's.
    assert asyncio.run(publisher(_example("003-model-failover"))) is None
    assert cache.get_snapshot() is served
    assert publisher.board.snapshot_version == served.version
    broken.clear()
    assert asyncio.run(publisher(_example("003-model-failover")))
    now = cache.get_snapshot()
    assert now is not None
    assert now.version != served.version


def test_an_invalid_object_in_a_queued_load_is_reported_by_the_translation_that_covers_it() -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(cache=cache, options=TranslateOptions(), refusals=ProxyRefusals())
    broken = load_text(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: lost\n"
        "spec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: nowhere\n",
        file="broken.yaml",
    )
    good = _example("001-weighted-split")

    async def publish() -> None:
        await asyncio.gather(publisher(good), publisher(good), publisher(broken))

    asyncio.run(publish())
    assert publisher.board.loads == 2
    assert any(problem.name == "lost" for problem in publisher.board.problems)


class _Minter:
    """Answers every mint at once with a token, or never (``hang``)."""

    def __init__(self, *, hang: bool) -> None:
        self._hang = hang

    async def __call__(self, request: MintRequest, /) -> Minted:
        if self._hang:
            await asyncio.Event().wait()
        return Minted(value="minted-at-once", expires_at=time.time() + 3600)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("hang", [False, True], ids=["answers", "hangs"])
def test_a_new_policys_first_token_is_waited_for_briefly(hang: bool) -> None:
    cache = SnapshotCache()
    publisher = SnapshotPublisher(
        cache=cache, options=TranslateOptions(), refusals=ProxyRefusals(), minter=_Minter(hang=hang)
    )
    policy = BackendSecurityPolicy.key_for("default", "azure-secret")

    async def publish() -> Mapping[ObjectKey, ObjectStatus] | None:
        try:
            return await publisher(load_paths([MINTED_CASE]))
        finally:
            await publisher.close()

    verdicts = asyncio.run(publish())
    assert verdicts is not None
    reasons = {condition.reason for condition in verdicts[policy].conditions}
    snapshot = cache.get_snapshot()
    assert snapshot is not None
    # Answered at once: the first configuration already carries the token; never: it goes out without.
    assert ("credential/default/azure-secret" in snapshot.get(SECRET)) is not hang
    assert ("TokenPending" in reasons) is hang

"""``build_ir`` without a memo (``translate``, a ``Translator`` reusing nothing) uses ``OneShotMemo``, which
records nothing: on every example and translation golden input it must build what a recording
``TranslationMemo``'s first translation builds, computing each fragment as many times (once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.one_shot import OneShotMemo
from controlplane.sources.file_reading import load_paths

ROOT = Path(__file__).parent.parent
INPUTS = sorted(
    [
        *(path for path in (ROOT / "examples").iterdir() if path.is_dir()),
        *(ROOT / "tests" / "testdata" / "translate").glob("*.in.yaml"),
        *(ROOT / "tests" / "testdata" / "incremental").glob("*.yaml"),
    ]
)
OPTIONS = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)


@pytest.mark.parametrize("source", INPUTS, ids=lambda path: path.name)
def test_one_shot_memo_builds_what_a_recording_memo_builds(source: Path) -> None:
    resources = load_paths([source]).resource_set()
    recording = TranslationMemo()
    recorded = build_ir(resources, options=OPTIONS, memo=recording)
    one_shot = OneShotMemo()
    try:
        built = build_ir(resources, options=OPTIONS, memo=one_shot)
        assert built == recorded
        assert one_shot.computed == recording.computed
    finally:
        one_shot.release()

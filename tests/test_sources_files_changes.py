"""A change to some files of a folder costs what those files cost: the files written to are read again
without listing the folder, and their objects are put in the combined load without indexing every other
file's, with the same result (objects, order, duplicates, problems) as reading the folder afresh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from watchfiles import Change

from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.sources import files
from controlplane.sources.combined import CombinedLoads
from controlplane.sources.file_reading import load_paths
from controlplane.sources.files import FileSource


def _config_maps(*names: str) -> str:
    return "---\n".join(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n" for name in names)


def _summary(result: LoadResult) -> tuple[list[tuple[str, str | None]], list[str]]:
    return [(o.object.name, o.file) for o in result.objects], [p.format() for p in result.problems]


# Each file holds names from a small alphabet, so that edits often define a name another file holds.
_FILE_NAMES = [f"f{i}.yaml" for i in range(4)]
_CONTENTS = st.lists(st.sampled_from("abcdef"), max_size=3)
_EDITS = st.lists(
    st.dictionaries(st.sampled_from(_FILE_NAMES), _CONTENTS, min_size=1), min_size=1, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(first=st.fixed_dictionaries({name: _CONTENTS for name in _FILE_NAMES}), edits=_EDITS)
def test_replacing_files_equals_combining_them_afresh(
    first: dict[str, list[str]], edits: list[dict[str, list[str]]]
) -> None:
    contents = dict(first)
    combined = CombinedLoads()
    result = combined.load(
        {name: load_text(_config_maps(*names), file=name) for name, names in contents.items()}, problems=[]
    )
    for edit in edits:
        contents.update(edit)
        result = combined.replace(
            {name: load_text(_config_maps(*names), file=name) for name, names in edit.items()}, problems=[]
        )
        fresh = combine(load_text(_config_maps(*names), file=name) for name, names in contents.items())
        assert _summary(result) == _summary(fresh)


def _refuse_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the folder was listed again")

    monkeypatch.setattr(files, "fingerprinted_files", refuse)


@pytest.mark.parametrize("spelled", ["absolute", "relative"])
def test_a_write_to_a_listed_file_reads_only_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "manifests" if spelled == "absolute" else Path("manifests")
    folder.mkdir()
    for index in range(5):
        (folder / f"r{index}.yaml").write_text(_config_maps(f"m{index}"))
    source = FileSource([folder])
    source.load()
    written = folder / "r3.yaml"
    written.write_text(_config_maps("m3", "extra"))
    event = {(Change.modified, os.path.abspath(written))}
    with monkeypatch.context() as patched:
        _refuse_listing(patched)
        result = source._load_if_changed(event)
        assert result is not None
        assert source._load_if_changed(event) is None  # the same event again: nothing changed since
    assert _summary(result) == _summary(load_paths([folder]))


def test_a_write_that_defines_another_files_object_is_a_duplicate_until_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in "ab":
        (tmp_path / f"{name}.yaml").write_text(_config_maps(name))
    source = FileSource([tmp_path])
    source.load()
    b_file = tmp_path / "b.yaml"
    reported = []
    for content in (_config_maps("b2", "a"), _config_maps("b")):
        b_file.write_text(content)
        with monkeypatch.context() as patched:
            _refuse_listing(patched)
            result = source._load_if_changed({(Change.modified, str(b_file))})
            assert result is not None
        assert _summary(result) == _summary(load_paths([tmp_path]))
        reported.append([p.message for p in result.problems])
    assert [len(messages) for messages in reported] == [1, 0]
    assert reported[0][0].startswith("duplicate ConfigMap/default/a, already defined at")


def _remove(path: Path) -> Path:
    path.unlink()
    return path


def _symlink(path: Path) -> Path:
    path.symlink_to(".")
    return path


# Renames onto listed files and files the listing does not take: tests/test_sources_files_bursts.py.
@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda folder: (Change.added, str(folder / "new.yaml")), id="a new file"),
        pytest.param(lambda folder: (Change.deleted, str(_remove(folder / "a.yaml"))), id="a removed file"),
        pytest.param(lambda folder: (Change.added, str(_symlink(folder / "..data"))), id="a symlink added"),
    ],
)
def test_any_other_event_lists_the_folder_again(tmp_path: Path, event: object) -> None:
    (tmp_path / "a.yaml").write_text(_config_maps("a"))
    source = FileSource([tmp_path])
    source.load()
    # Written without an event: only a listing finds it.
    (tmp_path / "new.yaml").write_text(_config_maps("new"))
    assert callable(event)
    result = source._load_if_changed({event(tmp_path)})
    assert result is not None
    assert _summary(result) == _summary(load_paths([tmp_path]))

"""Bursts of file operations, with the events the watcher reports for them, load what reading the folder
afresh loads, whether the source reads only the files named (a save in place, a temporary file renamed
over a listed one, swap files coming and going) or lists everything again (files added, removed or renamed
away, second names, symlinks, folders moved).

The events are what ``watchfiles`` reports on Linux: a rename is ``deleted`` for the old name and
``added`` for the new one, a folder moved away is one ``deleted`` for the folder and nothing for its
files. Every file written gets a modification time of its own, so a change is never hidden by two writes
of the same size within the clock's granularity (a limit of fingerprints the source shares with a listing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from watchfiles import Change

from controlplane.resources.parse import LoadResult
from controlplane.sources import files
from controlplane.sources.file_reading import fingerprinted_files, load_paths
from controlplane.sources.files import FileSource

_NAMES = ["a.yaml", "b.yaml", "sub/c.yaml", "sub/d.yaml"]
_TEMPORARY = {
    "listable": "tmp{n}.yaml",  # Python's NamedTemporaryFile(suffix=".yaml") in the same folder
    "hidden": ".{name}.tmp{n}",  # atomic writers, rsync
    "backup": "{name}~",  # vim, Emacs
}


def _summary(result: LoadResult) -> tuple[list[tuple[str, str | None]], list[str]]:
    return [(o.object.name, o.file) for o in result.objects], [p.format() for p in result.problems]


@dataclass
class Folder:
    """A folder changed the way editors and tools change one, recording the events the watcher reports."""

    root: Path
    events: set[tuple[Change, str]] = field(default_factory=set)
    _versions: int = 0

    def _event(self, change: Change, path: Path) -> None:
        self.events.add((change, os.path.abspath(path)))

    def _folder_of(self, path: Path) -> None:
        if not path.parent.is_dir():
            path.parent.mkdir()
            self._event(Change.added, path.parent)

    def _write(self, path: Path, name: str) -> None:
        if path.is_symlink() and not path.exists():
            return  # a symlink to a file gone: not a file to save
        self._versions += 1
        existed = path.exists()
        self._folder_of(path)
        stem = Path(name).stem
        path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {stem}-{self._versions}}}\n")
        os.utime(path, ns=(self._versions * 10**9, self._versions * 10**9))
        # Written through a symlink, the event names the file it leads to.
        self._event(Change.modified if existed else Change.added, Path(os.path.realpath(path)))

    def save_in_place(self, name: str) -> None:
        self._write(self.root / name, name)

    def save_by_rename(self, name: str, temporary: str) -> None:
        target = self.root / name
        self._folder_of(target)
        spare = target.parent / _TEMPORARY[temporary].format(name=target.name, n=self._versions)
        self._write(spare, name)
        self._rename(spare, target)

    def _rename(self, source: Path, target: Path) -> None:
        """Over ``target`` if it exists: inotify reports no event for the file it held."""
        os.replace(source, target)
        self._event(Change.deleted, source)
        self._event(Change.added, target)

    def remove(self, name: str) -> None:
        path = self.root / name
        if path.exists() or path.is_symlink():
            path.unlink()
            self._event(Change.deleted, path)

    def rename_away(self, name: str) -> None:
        path = self.root / name
        if path.exists():
            self._rename(path, path.with_name(path.name + ".bak"))

    def second_name_onto(self, source: str, target: str, *, symlink: bool) -> None:
        """``target`` becomes another name of ``source``'s file (a hard link or a symlink renamed onto it)."""
        existing = Path(os.path.realpath(self.root / source))
        destination = self.root / target
        if not existing.is_file() or existing == destination:
            return
        self._folder_of(destination)
        spare = destination.parent / f".link{self._versions}"
        self._versions += 1
        if symlink:
            spare.symlink_to(os.path.relpath(existing, spare.parent))
        else:
            os.link(existing, spare)
        self._event(Change.added, spare)
        self._rename(spare, destination)

    def _hidden(self, name: str) -> Path:
        return (self.root / name).with_name(f".real-{Path(name).name}")

    def save_hidden(self, name: str) -> None:
        """A file the listing does not take, which a listed symlink may lead to (see ``link_to_hidden``)."""
        self._write(self._hidden(name), name)

    def link_to_hidden(self, name: str) -> None:
        hidden = self._hidden(name)
        if hidden.is_file():
            spare = hidden.with_name(f".link{self._versions}")
            self._versions += 1
            spare.symlink_to(hidden.name)
            self._event(Change.added, spare)
            self._rename(spare, self.root / name)

    def save_through_hidden_link(self, name: str) -> None:
        """A write through a hidden second name of a listed file (``ln a.yaml .a.bak``): the event names only
        the hidden path, never the listed one."""
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            return
        link = path.with_name(f".hard-{path.name}")
        if not link.exists():
            os.link(path, link)
            self._event(Change.added, link)
        self._write(link, name)

    def swap_file(self, name: str) -> None:
        """An editor's swap file, written and left behind (or removed when there already is one)."""
        swap = (self.root / name).with_name(f".{Path(name).name}.swp")
        if swap.exists():
            swap.unlink()
            self._event(Change.deleted, swap)
        elif swap.parent.is_dir():
            self._write(swap, name)

    def move_subfolder_away(self) -> None:
        sub = self.root / "sub"
        if sub.is_dir():
            sub.rename(self.root.parent / f"moved{self._versions}")
            self._versions += 1
            self._event(Change.deleted, sub)


_OPERATIONS = st.one_of(
    st.tuples(st.just("save_in_place"), st.sampled_from(_NAMES)),
    st.tuples(st.just("save_by_rename"), st.sampled_from(_NAMES), st.sampled_from(sorted(_TEMPORARY))),
    st.tuples(st.just("remove"), st.sampled_from(_NAMES)),
    st.tuples(st.just("rename_away"), st.sampled_from(_NAMES)),
    st.tuples(st.just("hard_link_onto"), st.sampled_from(_NAMES), st.sampled_from(_NAMES)),
    st.tuples(st.just("symlink_onto"), st.sampled_from(_NAMES), st.sampled_from(_NAMES)),
    st.tuples(st.just("swap_file"), st.sampled_from(_NAMES)),
    st.tuples(st.just("save_through_hidden_link"), st.sampled_from(_NAMES)),
    st.tuples(st.just("save_hidden"), st.sampled_from(_NAMES)),
    st.tuples(st.just("link_to_hidden"), st.sampled_from(_NAMES)),
    st.tuples(st.just("move_subfolder_away")),
)


def _apply(folder: Folder, operation: tuple[str, ...]) -> None:
    match operation:
        case ("hard_link_onto", source, target):
            folder.second_name_onto(source, target, symlink=False)
        case ("symlink_onto", source, target):
            folder.second_name_onto(source, target, symlink=True)
        case (name, *arguments):
            getattr(folder, name)(*arguments)


@contextmanager
def _folder() -> Iterator[Folder]:
    base = Path(tempfile.mkdtemp(prefix="bursts-"))
    try:
        folder = Folder(base / "manifests")
        folder.root.mkdir()
        for name in _NAMES:
            folder.save_in_place(name)
        yield folder
    finally:
        shutil.rmtree(base)


@settings(max_examples=300, deadline=None)
@given(bursts=st.lists(st.lists(_OPERATIONS, min_size=1, max_size=4), min_size=1, max_size=6))
# A second name made in a folder new to the burst, written through, and the folder moved away: the listed file
# changed, and no event names it or any path that is still there (found by CI).
@example(
    bursts=[
        [("move_subfolder_away",)],
        [
            ("hard_link_onto", "a.yaml", "sub/c.yaml"),
            ("save_in_place", "sub/c.yaml"),
            ("move_subfolder_away",),
        ],
    ]
)
# The same with the second name removed instead, in a folder of listed files.
@example(
    bursts=[
        [("remove", "sub/c.yaml")],
        [
            ("hard_link_onto", "a.yaml", "sub/c.yaml"),
            ("save_in_place", "sub/c.yaml"),
            ("remove", "sub/c.yaml"),
        ],
    ]
)
def test_every_burst_loads_what_reading_the_folder_afresh_loads(bursts: list[list[tuple[str, ...]]]) -> None:
    with _folder() as folder:
        source = FileSource([folder.root])
        current = source.load()
        for burst in bursts:
            folder.events.clear()
            for operation in burst:
                _apply(folder, operation)
            current = source._load_if_changed(set(folder.events)) or current
            assert _summary(current) == _summary(load_paths([folder.root])), burst


def test_a_second_name_written_through_removed_and_made_again_as_a_file_of_its_own() -> None:
    """``ln a.yaml .x``, a write through ``.x``, ``rm .x``, a new ``.x``: at the end ``.x`` is a plain file
    with one name, and only its events came; ``a.yaml`` changed all the same."""
    with _folder() as folder:
        source = FileSource([folder.root])
        source.load()
        folder.events.clear()
        listed, spare = folder.root / "a.yaml", folder.root / ".x"
        os.link(listed, spare)
        folder._event(Change.added, spare)
        folder._write(spare, "x.yaml")
        spare.unlink()
        folder._event(Change.deleted, spare)
        spare.write_text("not yaml\n")
        folder._event(Change.added, spare)
        current = source._load_if_changed(set(folder.events))
        assert current is not None
        assert _summary(current) == _summary(load_paths([folder.root]))


def _refuse_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the folder was listed again")

    monkeypatch.setattr(files, "fingerprinted_files", refuse)


@pytest.mark.parametrize("temporary", sorted(_TEMPORARY))
@pytest.mark.parametrize("name", ["a.yaml", "sub/c.yaml"])
def test_a_save_by_rename_reads_only_the_saved_file(
    monkeypatch: pytest.MonkeyPatch, name: str, temporary: str
) -> None:
    with _folder() as folder:
        source = FileSource([folder.root])
        source.load()
        folder.events.clear()
        folder.save_by_rename(name, temporary)
        folder.swap_file(name)
        with monkeypatch.context() as patched:
            _refuse_listing(patched)
            result = source._load_if_changed(set(folder.events))
        assert result is not None
        # The temporary file's content, under the name it was saved as.
        saved = [(o.object.name, o.file) for o in result.objects if o.file == str(folder.root / name)]
        assert saved == [(f"{Path(name).stem}-{len(_NAMES) + 1}", str(folder.root / name))]
        assert _summary(result) == _summary(load_paths([folder.root]))


@pytest.mark.parametrize(
    "burst",
    [
        pytest.param(lambda f: f.second_name_onto("b.yaml", "a.yaml", symlink=False), id="a hard link onto"),
        pytest.param(lambda f: f.second_name_onto("b.yaml", "a.yaml", symlink=True), id="a symlink onto"),
        pytest.param(
            lambda f: (f.save_by_rename("a.yaml", "hidden"), f.remove("a.yaml")), id="saved, removed"
        ),
        pytest.param(lambda f: f.rename_away("a.yaml"), id="renamed away"),
        pytest.param(lambda f: f.move_subfolder_away(), id="a folder moved away"),
        pytest.param(lambda f: f._write(f.root / "tmp9.yaml", "tmp9.yaml"), id="a temporary file left"),
    ],
)
def test_a_burst_that_changes_the_listing_lists_the_folder_again(burst: object) -> None:
    with _folder() as folder:
        source = FileSource([folder.root])
        source.load()
        folder.events.clear()
        assert callable(burst)
        burst(folder)
        listings = []

        def counted(*args: object, **kwargs: object) -> dict[str, tuple[int, int]]:
            listings.append(args)
            return fingerprinted_files(*args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(files, "fingerprinted_files", counted)
            result = source._load_if_changed(set(folder.events))
        assert len(listings) == 1
        assert result is not None
        assert _summary(result) == _summary(load_paths([folder.root]))


def test_a_second_name_listed_keeps_renames_onto_its_file_on_the_full_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``b.yaml`` is skipped as ``a.yaml``'s second name; a save by rename of ``a.yaml`` makes it a file of
    its own, with no event of its own: only a listing finds it."""
    with _folder() as folder:
        folder.remove("b.yaml")
        os.link(folder.root / "a.yaml", folder.root / "b.yaml")
        source = FileSource([folder.root])
        source.load()
        # Written elsewhere on the same filesystem: the only event is the rename onto a.yaml.
        written = folder.root.parent / "a.yaml"
        written.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: saved}\n")
        os.replace(written, folder.root / "a.yaml")
        result = source._load_if_changed({(Change.added, str(folder.root / "a.yaml"))})
        assert result is not None
        assert [o.file for o in result.objects].count(str(folder.root / "b.yaml")) == 1
        assert _summary(result) == _summary(load_paths([folder.root]))

"""The file source while running: file events (not polling) start a reload, ConfigMap symlink swaps are
seen through a folder or a single file, a half-written file keeps its last good version, and a folder that
appears later is picked up.

The periodic re-check is set far beyond the tests' deadlines, so a passing test was woken by a file event.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controlplane.gatewayapi import ObjectStatus
from controlplane.resources.parse import LoadResult
from controlplane.resources.problems import ObjectKey
from controlplane.sources import files
from controlplane.sources.file_reading import fingerprinted_files
from controlplane.sources.files import FileSource, _watch_roots, _WatchRoot
from tests.polling import wait_until

NO_RESYNC = 3600.0


def _config_map(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


@dataclass
class Recorder:
    """What each load handed over: the object names and the problem lines."""

    loads: list[tuple[list[str], list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, result: LoadResult) -> Mapping[ObjectKey, ObjectStatus]:
        with self.lock:
            self.loads.append(
                (sorted(o.object.name for o in result.objects), [p.format() for p in result.problems])
            )
        return {}

    def last_names(self) -> list[str] | None:
        with self.lock:
            return self.loads[-1][0] if self.loads else None

    def wait_for_names(self, names: list[str]) -> tuple[list[str], list[str]]:
        def check() -> tuple[list[str], list[str]]:
            with self.lock:
                assert self.loads, "no load yet"
                assert self.loads[-1][0] == names, f"last load has {self.loads[-1][0]}"
                return self.loads[-1]

        return wait_until(check)


@contextmanager
def running(paths: list[Path]) -> Iterator[Recorder]:
    """The source running on its own event loop in a thread, stopped (and its watchers with it) on exit."""
    recorder = Recorder()
    source = FileSource(paths, debounce_seconds=0.05, resync_seconds=NO_RESYNC)
    loop = asyncio.new_event_loop()

    async def run_until_cancelled() -> None:
        with suppress(asyncio.CancelledError):
            await source.run(recorder)

    task = loop.create_task(run_until_cancelled())
    thread = threading.Thread(target=loop.run_until_complete, args=(task,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10)
        assert not thread.is_alive(), "the file source still runs 10 s after it was cancelled"
        loop.close()


def test_a_saved_file_and_a_new_file_are_loaded_on_their_events(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_config_map("a"))
    with running([tmp_path]) as recorder:
        recorder.wait_for_names(["a"])
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "b.yaml").write_text(_config_map("b"))
        recorder.wait_for_names(["a", "b"])
        (tmp_path / "a.yaml").write_text(_config_map("a2"))
        recorder.wait_for_names(["a2", "b"])
        (tmp_path / "sub" / "b.yaml").unlink()
        recorder.wait_for_names(["a2"])


@pytest.mark.parametrize("watched", ["volume", "file"])
def test_a_configmap_update_by_symlink_swap_is_loaded(tmp_path: Path, watched: str) -> None:
    """As the kubelet does it: the new data in a new timestamped folder, then ``..data`` renamed over."""
    volume = tmp_path / "volume"
    first = volume / "..2024_01_01_00_00_00.1"
    first.mkdir(parents=True)
    (first / "routes.yaml").write_text(_config_map("v1"))
    (volume / "..data").symlink_to(first.name)
    (volume / "routes.yaml").symlink_to(Path("..data") / "routes.yaml")
    path = volume if watched == "volume" else volume / "routes.yaml"
    with running([path]) as recorder:
        recorder.wait_for_names(["v1"])
        second = volume / "..2024_01_01_00_01_00.2"
        second.mkdir()
        (second / "routes.yaml").write_text(_config_map("v2"))
        (volume / "..data_tmp").symlink_to(second.name)
        os.replace(volume / "..data_tmp", volume / "..data")
        recorder.wait_for_names(["v2"])
        (first / "routes.yaml").unlink()
        first.rmdir()
        third = volume / "..2024_01_01_00_02_00.3"
        third.mkdir()
        (third / "routes.yaml").write_text(_config_map("v3"))
        (volume / "..data_tmp").symlink_to(third.name)
        os.replace(volume / "..data_tmp", volume / "..data")
        recorder.wait_for_names(["v3"])


def test_saves_by_rename_are_loaded_without_listing_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An atomic writer's save (a hidden temporary file renamed over) and vim's (the file renamed to a
    backup, written anew, the backup removed) read the saved file only; a new file is still found."""
    (tmp_path / "sub").mkdir()
    for name in ("a.yaml", "sub/b.yaml"):
        (tmp_path / name).write_text(_config_map(Path(name).stem))
    listings: list[object] = []

    def counted(*args: Any, **kwargs: Any) -> dict[str, tuple[int, int]]:
        listings.append(args)
        return fingerprinted_files(*args, **kwargs)

    monkeypatch.setattr(files, "fingerprinted_files", counted)
    with running([tmp_path]) as recorder:
        recorder.wait_for_names(["a", "b"])
        wait_until(lambda: listings)
        listed = len(listings)
        spare = tmp_path / "sub" / ".b.yaml.tmp123"
        spare.write_text(_config_map("b2"))
        os.replace(spare, tmp_path / "sub" / "b.yaml")
        recorder.wait_for_names(["a", "b2"])
        (tmp_path / "a.yaml").rename(tmp_path / "a.yaml~")
        (tmp_path / "a.yaml").write_text(_config_map("a2"))
        (tmp_path / "a.yaml~").unlink()
        recorder.wait_for_names(["a2", "b2"])
        assert len(listings) == listed
        (tmp_path / "c.yaml").write_text(_config_map("c"))
        recorder.wait_for_names(["a2", "b2", "c"])
        assert len(listings) > listed


def test_a_half_written_file_keeps_serving_its_last_good_version(tmp_path: Path) -> None:
    target = tmp_path / "a.yaml"
    target.write_text(_config_map("good"))
    with running([tmp_path]) as recorder:
        recorder.wait_for_names(["good"])
        target.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ")
        wait_until(lambda: any("serving the last good version" in line for line in recorder.loads[-1][1]))
        assert recorder.last_names() == ["good"]
        target.write_text(_config_map("fixed"))
        _, problems = recorder.wait_for_names(["fixed"])
        assert problems == []


def test_a_folder_created_after_start_is_watched_and_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "later" / "config"
    with running([folder]) as recorder:
        _, problems = recorder.wait_for_names([])
        assert problems == [f"{folder}:-: -: -: no such file or directory"]
        folder.mkdir(parents=True)
        (folder / "a.yaml").write_text(_config_map("a"))
        _, problems = recorder.wait_for_names(["a"])
        assert problems == []
        (folder / "b.yaml").write_text(_config_map("b"))
        recorder.wait_for_names(["a", "b"])


def test_a_folder_without_subfolders_is_watched_on_its_own(tmp_path: Path) -> None:
    """A recursive watch walks everything below its folder while holding the GIL (a stall of the event
    loop at thousands of files): a folder whose only subfolders are hidden (a ConfigMap volume's) is not
    watched recursively; one with a visible subfolder is."""
    (tmp_path / "..2024_01_01_00_00_00.1").mkdir()
    source = FileSource([tmp_path])
    source.load()
    assert _watch_roots([tmp_path], nested=source._nested) == (_WatchRoot(tmp_path, recursive=False),)
    (tmp_path / "sub").mkdir()
    source.load()
    assert _watch_roots([tmp_path], nested=source._nested) == (_WatchRoot(tmp_path, recursive=True),)


def test_files_in_a_subfolder_made_later_are_loaded_on_their_events(tmp_path: Path) -> None:
    with running([tmp_path]) as recorder:
        recorder.wait_for_names([])
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "a.yaml").write_text(_config_map("a"))
        recorder.wait_for_names(["a"])
        (tmp_path / "sub" / "deeper").mkdir()
        (tmp_path / "sub" / "deeper" / "b.yaml").write_text(_config_map("b"))
        recorder.wait_for_names(["a", "b"])
        (tmp_path / "sub" / "deeper" / "b.yaml").write_text(_config_map("b2"))
        recorder.wait_for_names(["a", "b2"])


def test_files_in_a_subfolder_there_from_the_start_are_loaded_on_their_events(tmp_path: Path) -> None:
    """The first plan knows no listing yet: the subfolder found by the first load is watched at once."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text(_config_map("a"))
    with running([tmp_path]) as recorder:
        recorder.wait_for_names(["a"])
        (tmp_path / "sub" / "a.yaml").write_text(_config_map("a2"))
        recorder.wait_for_names(["a2"])

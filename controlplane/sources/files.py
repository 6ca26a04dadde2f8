"""Watch YAML files and directories; hand every settled change to the pipeline as one load.

Which files a path names, and how one is read within the limits, is ``sources.file_reading``'s job (shared
with the one-off ``load_paths`` of the ``translate`` command); ``FileSource`` keeps reading them (``serve``).

Changes are noticed through the operating system's file events (inotify, through ``watchfiles``), so a
save is seen at once rather than at the next poll. Events only say "look again": what changed is decided by
each file's size and mtime, read through symlinks, so a ConfigMap volume, whose files change by swapping
its ``..data`` symlink, behaves like a plain folder. When a burst's events leave the listing as it was,
only the files of the last listing they name are checked and read, and put in the load in place of their
previous objects (``CombinedLoads``): a save in place costs what the changed files cost, not a listing of
thousands of files (about 30 ms at 5,000). Such a burst is writes to listed files (saving in place), and,
while no listed file is a symlink or has a second name listed, also a file renamed over a listed one (an
editor's or an atomic writer's save) and files the listing would not take coming and going (their
temporary and swap files; not a hidden second name of a listed file, which a write through it changes;
when such a file is removed or gone by the end of the burst, it may have been a second name written
through, so every listed file's fingerprint is checked again: about half a listing's cost, with no walk).
Anything else lists everything: a file added or removed, a folder or symlink appearing (a ConfigMap's
``..data`` swap), a folder of listed files gone.

A directory is watched recursively when it has a visible subfolder, and on its own otherwise (starting a
recursive watch walks everything below it while holding the GIL, about 15 ms at 5,000 files, a stall of the
event loop): each load's listing tells which directories have subfolders, and the watch is planned again as
soon as that changes, before anything else.
A named file is watched through its own directory (where the symlink swap happens), a path that does not
exist yet through its nearest existing parent. Every ``resync_seconds`` the files are checked anyway, for
filesystems that send no events (some network mounts). A burst of writes (an editor saving, ``cp`` of a
folder) is coalesced: a load happens once no event arrived for ``debounce_seconds``. Reading and parsing
run in a worker thread.

A file that stops parsing (an editor's half-written save, a typo) does not take its objects away: its last
good version keeps serving, with the parse error reported, so Envoy keeps working while the user fixes it.
A load over the object limit (``FileLimits``) is refused whole, and the last load within it keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# watchfiles drives its watchers through anyio, which imports its asyncio backend on first use: 40 ms on the
# event loop, at the first load. Imported with this module instead.
import anyio._backends._asyncio  # noqa: F401
import structlog
import watchfiles

from controlplane import defaults
from controlplane.heap import building_configuration
from controlplane.resources.parse import LoadResult
from controlplane.resources.problems import ObjectKey, Problem, Severity
from controlplane.sources.base import LoadHandler
from controlplane.sources.combined import CombinedLoads
from controlplane.sources.file_reading import (
    DEFAULT_LIMITS,
    FileLimits,
    fingerprinted_files,
    listed_below,
    load_file,
    object_count_problem,
)

if TYPE_CHECKING:
    from controlplane.gatewayapi import ObjectStatus

_log = structlog.get_logger(__name__)

_EVENT_STEP_MS = 10
"""How often the watcher thread looks for new events (it wakes this often while idle: ~0.5% of a core)."""
_Events = set[tuple[watchfiles.Change, str]]
"""What the watchers saw: (change, absolute path) pairs."""


@dataclass(frozen=True, slots=True)
class _FileState:
    fingerprint: tuple[int, int]
    result: LoadResult


class FileSource:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        debounce_seconds: float = defaults.DEBOUNCE_SECONDS,
        resync_seconds: float = defaults.FILE_RESYNC_SECONDS,
        limits: FileLimits = DEFAULT_LIMITS,
    ) -> None:
        self._paths = list(paths)
        self._limits = limits
        self._last_within_limits: LoadResult | None = None
        self._debounce = debounce_seconds
        self._resync = resync_seconds
        self._files: dict[str, _FileState] = {}
        self._good: dict[str, LoadResult] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self._listing_problems: list[Problem] = []
        """What the last full listing found missing: a load that re-reads only changed files keeps them."""
        self._combined = CombinedLoads()
        self._spellings: list[tuple[str, str]] = []
        """(absolute, as given) prefixes of the paths, to spell an event's path as the listing does."""
        self._nested: frozenset[Path] = frozenset()
        """The directories among the paths that had a visible subfolder at the last listing."""
        self._aliased = False
        """Whether a file of the last listing is a symlink or was reached by a second name (skipped): then
        events for paths outside the listing, or renames onto it, may change it (see ``_written``)."""
        self._listed_folders: frozenset[str] | None = None
        """The folders holding the last listing's files, and theirs; made when first needed."""

    def state(self) -> dict[str, Any]:
        return {"files": [str(path) for path in self._paths]}

    def synced(self) -> bool:
        # Every file is read before the first load goes out.
        return True

    def report(self, statuses: Mapping[ObjectKey, ObjectStatus], /) -> None:
        """Files have no status to write: verdicts are on ``/status`` and in the log."""

    def load(self) -> LoadResult:
        """Reads what changed since the last call and returns the whole configuration."""
        problems: list[Problem] = []
        return self._load(self._list(problems), problems)

    def _list(self, problems: list[Problem]) -> dict[str, tuple[int, int]]:
        nested: set[Path] = set()
        aliased: set[str] = set()
        listing = fingerprinted_files(self._paths, problems, nested=nested, aliased=aliased)
        self._nested = frozenset(nested)
        self._aliased = bool(aliased)
        self._listed_folders = None
        self._listing_problems = list(problems)
        self._spellings = [
            (os.path.abspath(path) + os.sep, os.fspath(path) + os.sep)
            if path.is_dir()
            else (os.path.abspath(path), os.fspath(path))
            for path in self._paths
        ]
        return listing

    def _spelled(self, path: str) -> str:
        """An event's absolute path as the listing spells it (from the paths as given, maybe relative)."""
        for absolute, given in self._spellings:
            if path.startswith(absolute):
                return given + path[len(absolute) :]
        return path

    def _load(
        self, listing: dict[str, tuple[int, int]], problems: list[Problem], *, changed: Sequence[str] = ()
    ) -> LoadResult:
        """The whole configuration for ``listing``: every file (checked against its fingerprint), or only
        ``changed`` ones when the listing holds the same files as the last one."""
        self._seen = listing
        if changed:
            loaded = self._combined.replace(
                {path: self._load_one(path, listing[path]) for path in changed}, problems=problems
            )
        else:
            results = {path: self._load_one(path, fingerprint) for path, fingerprint in listing.items()}
            for gone in set(self._files) - set(listing):
                del self._files[gone]
                self._good.pop(gone, None)
            loaded = self._combined.load(results, problems=problems)
        too_many = object_count_problem(loaded, self._limits)
        if too_many is None:
            self._last_within_limits = loaded
            return loaded
        kept = self._last_within_limits.objects if self._last_within_limits is not None else []
        if kept:
            too_many = replace(
                too_many, message=f"{too_many.message}; the last load ({len(kept)} objects) serves"
            )
        return LoadResult(objects=kept, problems=[*loaded.problems, too_many])

    async def run(self, on_load: LoadHandler) -> None:
        """Calls ``on_load`` with the first load, then after every settled change, until cancelled."""
        events: asyncio.Queue[_Events | None] = asyncio.Queue()
        watched: tuple[_WatchRoot, ...] = ()
        watchers: list[asyncio.Task[None]] = []
        result: LoadResult | None = None
        try:
            while True:
                roots = _watch_roots(self._paths, nested=self._nested)
                if roots != watched:
                    # Paths appeared or went away, or a folder got its first subfolder (or lost its last):
                    # watch them as they are now.
                    await _stopped(watchers)
                    watchers = [asyncio.create_task(_watch(root, events)) for root in roots]
                    watched = roots
                    await asyncio.sleep(0)  # the watchers register before the files are read
                    result = await asyncio.to_thread(self._load_without_collection)
                    continue  # its listing may have found subfolders the watchers do not cover yet
                if result is not None:
                    await on_load(result)
                touched = await self._settled(events)
                result = await asyncio.to_thread(self._load_if_changed, touched)
                if result is not None:
                    _log.info("configuration changed, reloading", files=len(self._seen))
        finally:
            await _stopped(watchers)

    async def _settled(self, events: asyncio.Queue[_Events | None]) -> _Events | None:
        """Returns once a burst of events is over, with the burst's events; None when every file is to be
        checked (``resync_seconds`` passed without any event, or a watch ended)."""
        try:
            first = await asyncio.wait_for(events.get(), timeout=self._resync)
        except TimeoutError:
            return None
        burst = None if first is None else set(first)
        while True:
            try:
                more = await asyncio.wait_for(events.get(), timeout=self._debounce)
            except TimeoutError:
                return burst
            if burst is not None and more is not None:
                burst.update(more)
            else:
                burst = None

    def _load_without_collection(self) -> LoadResult:
        with building_configuration():
            return self.load()

    def _load_if_changed(self, touched: _Events | None) -> LoadResult | None:
        """The whole configuration if any file changed since the last load (events also come for files that
        are not ours, and for writes that left a file as it was). When ``touched`` says only that files of
        the last listing were written to, only they are checked and read (see ``_written``); otherwise
        every file is listed again."""
        written = None if touched is None else self._written(touched)
        if written is not None:
            if not written:
                return None
            listing = {**self._seen, **written}
            with building_configuration():
                return self._load(listing, list(self._listing_problems), changed=list(written))
        problems: list[Problem] = []
        listing = self._list(problems)
        if listing == self._seen:
            return None
        with building_configuration():
            return self._load(listing, problems)

    def _written(self, touched: _Events) -> dict[str, tuple[int, int]] | None:
        """The new fingerprints of the listed files whose content changed, if ``touched`` leaves the last
        listing as it was (see the module docstring); None when it may not."""
        written: dict[str, tuple[int, int]] = {}
        vanished = False
        for change, absolute in touched:
            path = self._spelled(absolute)
            fingerprint = self._seen.get(path)
            if fingerprint is None:
                if self._aliased or not self._outside_listing(path, absolute):
                    return None
                # Removed, or gone by now (perhaps made again since: ``ln a.yaml .x``, a write, ``rm .x``).
                vanished = vanished or change is watchfiles.Change.deleted or not os.path.lexists(path)
                continue
            renamed_onto = change is not watchfiles.Change.modified
            if renamed_onto and self._aliased:
                return None
            try:
                # A file renamed onto must be a plain file of its own: not a symlink, not a second name.
                found = os.stat(path, follow_symlinks=not renamed_onto)
            except OSError:
                return None
            if not stat.S_ISREG(found.st_mode) or (renamed_onto and found.st_nlink != 1):
                return None
            if (found.st_mtime_ns, found.st_size) != fingerprint:
                written[path] = (found.st_mtime_ns, found.st_size)
        if vanished:
            # A path gone may have been a second name of a listed file, written through and removed or moved
            # away within the burst: the listed file changed with no event of its own. Their fingerprints
            # tell, a stat each: 2-4 ms a thousand files, about half a listing, and a save by rename (its
            # temporary file is gone) pays it too; events carry no rename pairs that would tell the two apart.
            return self._refingerprinted(written)
        return written

    def _refingerprinted(self, written: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]] | None:
        """``written`` and every other listed file whose fingerprint changed; None when one is gone or no
        longer a regular file (the listing changed)."""
        for path, fingerprint in self._seen.items():
            if path in written:
                continue
            try:
                found = os.stat(path)
            except OSError:
                return None
            if not stat.S_ISREG(found.st_mode):
                return None
            if (found.st_mtime_ns, found.st_size) != fingerprint:
                written[path] = (found.st_mtime_ns, found.st_size)
        return written

    def _outside_listing(self, path: str, absolute: str) -> bool:
        """Whether the path of an event, not in the last listing, leaves it as it was: gone and no folder of
        listed files (a temporary file renamed away), or a regular file the listing would not take (hidden,
        not YAML: swap files, backups) and that is no second name of a file (``ln a.yaml .a.bak``: a write
        through it changes the listed file, whose own name gets no event)."""
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            return path not in self._folders_of_listing()
        except OSError:
            return False
        return stat.S_ISREG(found.st_mode) and found.st_nlink == 1 and not self._would_list(absolute)

    def _would_list(self, absolute: str) -> bool:
        """Whether a listing would take the regular file at ``absolute``: a path named, or a visible YAML
        file below a folder named."""
        for prefix, _ in self._spellings:
            if prefix.endswith(os.sep):
                if absolute.startswith(prefix) and listed_below(absolute[len(prefix) :]):
                    return True
            elif absolute == prefix:
                return True
        return False

    def _folders_of_listing(self) -> frozenset[str]:
        if self._listed_folders is None:
            folders: set[str] = set()
            for path in self._seen:
                folder = os.path.dirname(path)
                while folder and folder not in folders:
                    folders.add(folder)
                    folder = os.path.dirname(folder)
            self._listed_folders = frozenset(folders)
        return self._listed_folders

    def _load_one(self, path: str, fingerprint: tuple[int, int]) -> LoadResult:
        state = self._files.get(path)
        if state is not None and state.fingerprint == fingerprint:
            return state.result
        result = load_file(path, max_bytes=self._limits.max_file_bytes)
        unreadable = not result.objects and any(
            problem.severity is Severity.ERROR and problem.kind is None for problem in result.problems
        )
        previous = self._good.get(path)
        if unreadable and previous is not None:
            kept = Problem(
                severity=Severity.WARNING,
                file=path,
                message=f"serving the last good version of this file ({len(previous.objects)} objects)",
            )
            result = LoadResult(objects=previous.objects, problems=[*result.problems, kept])
        else:
            self._good[path] = result
        self._files[path] = _FileState(fingerprint, result)
        return result


@dataclass(frozen=True, slots=True)
class _WatchRoot:
    path: Path
    recursive: bool


def _watch_roots(paths: Sequence[Path], *, nested: frozenset[Path]) -> tuple[_WatchRoot, ...]:
    """Where to listen for events about ``paths``, given the directories among them that have subfolders
    (see the module docstring)."""
    roots: dict[Path, bool] = {}
    for path in paths:
        if path.is_dir():
            roots[path] = path in nested
            continue
        parent = path.parent
        while not parent.is_dir() and parent != parent.parent:
            parent = parent.parent
        roots.setdefault(parent, False)
    return tuple(_WatchRoot(path, recursive) for path, recursive in sorted(roots.items()))


async def _watch(root: _WatchRoot, events: asyncio.Queue[_Events | None]) -> None:
    """Puts each batch of events about ``root`` into ``events``; None once the watch ended."""
    try:
        # Every event counts, hidden ones included: a ConfigMap update is a rename of ``..data``.
        async for changes in watchfiles.awatch(
            root.path, watch_filter=None, step=_EVENT_STEP_MS, recursive=root.recursive
        ):
            events.put_nowait(changes)
    except (OSError, RuntimeError) as exc:
        # The root went away under the watcher: look again now (and re-plan the roots from what exists).
        _log.warning("file watch ended", path=str(root.path), error=str(exc))
        events.put_nowait(None)


async def _stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Cancels the watchers and waits for them, so their threads end with them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

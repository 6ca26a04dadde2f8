"""Read and watch YAML files and directories; hand every settled change to the pipeline as one load.

Which files a path names is decided here: a directory means every ``*.yaml``/``*.yml`` below it, in sorted
order, skipping hidden entries (among them a ConfigMap volume's ``..data`` and timestamped folders, which
hold the same files a second time). ``load_paths`` reads them once (the ``translate`` command);
``FileSource`` keeps reading them (``serve``).

Polling (file size and mtime) is used instead of inotify so that it behaves the same on every filesystem,
including ConfigMap volumes whose files change by symlink swap. A burst of writes (an editor saving, ``cp``
of a folder) is coalesced: a load happens only after the files stopped changing for ``debounce_seconds``.

A file that stops parsing (an editor's half-written save, a typo) does not take its objects away: its last
good version keeps serving, with the parse error reported, so Envoy keeps working while the user fixes it.
Two limits (``FileLimits``) bound what one load may cost: a file over ``max_file_bytes`` is refused unread
(like a file that does not parse), and a load of more than ``max_objects`` objects is refused whole (the
last load within the limit keeps serving): the error says which limit, by how much, and which flag moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from controlplane import defaults
from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.resources.problems import Problem, Severity
from controlplane.sources.base import LoadHandler

_log = structlog.get_logger(__name__)

YAML_SUFFIXES = frozenset({".yaml", ".yml"})


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_objects: int = defaults.MAX_OBJECTS


_DEFAULT_LIMITS = FileLimits()


def load_paths(paths: Sequence[Path], *, limits: FileLimits = _DEFAULT_LIMITS) -> LoadResult:
    """Loads files and directories once (see the module docstring for which files a directory holds)."""
    problems: list[Problem] = []
    files = yaml_files(paths, problems)
    loaded = combine([load_file(path, max_bytes=limits.max_file_bytes) for path in files], problems=problems)
    too_many = _object_count_problem(loaded, limits)
    return loaded if too_many is None else LoadResult(objects=[], problems=[*loaded.problems, too_many])


def _object_count_problem(loaded: LoadResult, limits: FileLimits) -> Problem | None:
    if len(loaded.objects) <= limits.max_objects:
        return None
    return Problem(
        severity=Severity.ERROR,
        message=f"{len(loaded.objects)} objects, over the limit of {limits.max_objects} (--max-objects): "
        "none of this load is used",
    )


def yaml_files(paths: Sequence[Path], problems: list[Problem]) -> list[Path]:
    """The YAML files ``paths`` name, in load order; a missing path is reported into ``problems``."""
    seen: set[Path] = set()
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in YAML_SUFFIXES and p.is_file() and not _hidden(p.relative_to(path))
            )
        elif path.is_file():
            candidates = [path]
        else:
            problems.append(
                Problem(severity=Severity.ERROR, file=str(path), message="no such file or directory")
            )
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                out.append(candidate)
    return out


def load_file(path: Path, *, max_bytes: int = defaults.MAX_FILE_BYTES) -> LoadResult:
    """One file, on its own: duplicates across files are found by ``combine``."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # never more, even if the file grows while it is read
        if len(data) > max_bytes:
            size = max(path.stat().st_size, len(data))
            return _unread(path, f"{size} bytes, over the limit of {max_bytes} (--max-file-bytes)")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or "unreadable"
        return _unread(path, reason)
    return load_text(text, file=str(path))


def _unread(path: Path, reason: str) -> LoadResult:
    problem = Problem(severity=Severity.ERROR, file=str(path), message=f"cannot read file: {reason}")
    return LoadResult(objects=[], problems=[problem])


def _hidden(relative: Path) -> bool:
    # Also skips Kubernetes ConfigMap volume internals (``..data``, ``..2024_01_01...``).
    return any(part.startswith(".") for part in relative.parts)


@dataclass(frozen=True, slots=True)
class _FileState:
    fingerprint: tuple[int, int]
    result: LoadResult


class FileSource:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        poll_interval_seconds: float = 0.5,
        debounce_seconds: float = defaults.DEBOUNCE_SECONDS,
        limits: FileLimits = _DEFAULT_LIMITS,
    ) -> None:
        self._paths = list(paths)
        self._limits = limits
        self._last_within_limits: LoadResult | None = None
        self._poll_interval = poll_interval_seconds
        self._debounce = debounce_seconds
        self._files: dict[Path, _FileState] = {}
        self._good: dict[Path, LoadResult] = {}

    def state(self) -> dict[str, Any]:
        return {"files": [str(path) for path in self._paths]}

    def synced(self) -> bool:
        # Every file is read before the first load goes out.
        return True

    def load(self) -> LoadResult:
        """Reads what changed since the last call and returns the whole configuration."""
        problems: list[Problem] = []
        results = []
        current = yaml_files(self._paths, problems)
        for path in current:
            results.append(self._load_one(path))
        for gone in set(self._files) - set(current):
            del self._files[gone]
            self._good.pop(gone, None)
        loaded = combine(results, problems=problems)
        too_many = _object_count_problem(loaded, self._limits)
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
        await on_load(self.load())
        seen = self._fingerprints()
        while True:
            await asyncio.sleep(self._poll_interval)
            now = self._fingerprints()
            if now == seen:
                continue
            # Wait for the writer to finish: keep polling until nothing moved for a whole debounce period.
            while True:
                await asyncio.sleep(self._debounce)
                settled = self._fingerprints()
                if settled == now:
                    break
                now = settled
            seen = now
            _log.info("configuration changed, reloading", files=len(now))
            await on_load(self.load())

    def _fingerprints(self) -> dict[Path, tuple[int, int]]:
        fingerprints = {}
        for path in yaml_files(self._paths, []):
            fingerprint = _fingerprint(path)
            if fingerprint is not None:
                fingerprints[path] = fingerprint
        return fingerprints

    def _load_one(self, path: Path) -> LoadResult:
        fingerprint = _fingerprint(path)
        state = self._files.get(path)
        if state is not None and fingerprint is not None and state.fingerprint == fingerprint:
            return state.result
        result = load_file(path, max_bytes=self._limits.max_file_bytes)
        unreadable = not result.objects and any(
            problem.severity is Severity.ERROR and problem.kind is None for problem in result.problems
        )
        previous = self._good.get(path)
        if unreadable and previous is not None:
            kept = Problem(
                severity=Severity.WARNING,
                file=str(path),
                message=f"serving the last good version of this file ({len(previous.objects)} objects)",
            )
            result = LoadResult(objects=previous.objects, problems=[*result.problems, kept])
        else:
            self._good[path] = result
        if fingerprint is not None:
            self._files[path] = _FileState(fingerprint, result)
        return result


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)

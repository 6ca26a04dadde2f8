"""Read YAML files and directories once: which files a path names, and each file's objects within limits.

A directory means every ``*.yaml``/``*.yml`` below it, in sorted order, skipping hidden entries (among them a
ConfigMap volume's ``..data`` and timestamped folders, which hold the same files a second time).
``load_paths`` reads them once (the ``translate`` command); ``sources.files.FileSource`` keeps reading them
through the same functions (``serve``), which is why they live apart from its watching.

Two limits (``FileLimits``) bound what one load may cost: a file over ``max_file_bytes`` is refused unread
(like a file that does not parse), and a load of more than ``max_objects`` objects is refused whole: the error
says which limit, by how much, and which flag moves it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from controlplane import defaults
from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.resources.problems import Problem, Severity

YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_YAML_ENDINGS = tuple(YAML_SUFFIXES)
_NAME = attrgetter("name")


def _hidden(name: str) -> bool:
    """The listing's first rule: an entry with a hidden name is skipped, with everything below it (among them
    a ConfigMap volume's ``..data`` and timestamped folders, which hold the same files a second time)."""
    return name.startswith(".")


def _yaml(name: str) -> bool:
    """The second: of the files, only those with a YAML ending are listed."""
    return name.endswith(_YAML_ENDINGS)


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_objects: int = defaults.MAX_OBJECTS


DEFAULT_LIMITS = FileLimits()


def load_paths(paths: Sequence[Path], *, limits: FileLimits = DEFAULT_LIMITS) -> LoadResult:
    """Loads files and directories once (see the module docstring for which files a directory holds)."""
    problems: list[Problem] = []
    files = yaml_files(paths, problems)
    loaded = combine([load_file(path, max_bytes=limits.max_file_bytes) for path in files], problems=problems)
    too_many = object_count_problem(loaded, limits)
    return loaded if too_many is None else LoadResult(objects=[], problems=[*loaded.problems, too_many])


def object_count_problem(loaded: LoadResult, limits: FileLimits) -> Problem | None:
    if len(loaded.objects) <= limits.max_objects:
        return None
    return Problem(
        severity=Severity.ERROR,
        message=f"{len(loaded.objects)} objects, over the limit of {limits.max_objects} (--max-objects): "
        "none of this load is used",
    )


def yaml_files(paths: Sequence[Path], problems: list[Problem]) -> list[Path]:
    """The YAML files ``paths`` name, in load order; a missing path is reported into ``problems``."""
    return [Path(name) for name in fingerprinted_files(paths, problems)]


def fingerprinted_files(
    paths: Sequence[Path],
    problems: list[Problem],
    *,
    nested: set[Path] | None = None,
    aliased: set[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """``yaml_files`` (by name: a check of thousands of files makes no ``Path`` objects) with each file's
    fingerprint (mtime, size), read through symlinks. A file reached twice (a symlink, overlapping paths) is
    listed once, under the first name. The directories among ``paths`` that have a visible subfolder are
    added to ``nested``; the names whose file another name can change or stand for (a symlink listed, a
    second name skipped) to ``aliased``."""
    seen: set[tuple[int, int]] = set()
    out: dict[str, tuple[int, int]] = {}
    for path in paths:
        if path.is_dir():
            candidates = _files_below(path, nested=nested, links=aliased)
        elif path.is_file():
            candidates = [str(path)]
            if aliased is not None and path.is_symlink():
                aliased.add(candidates[0])
        else:
            problems.append(
                Problem(severity=Severity.ERROR, file=str(path), message="no such file or directory")
            )
            continue
        for candidate in candidates:
            try:
                found = os.stat(candidate)
            except OSError:
                continue  # a dangling symlink, or gone since the directory was read
            identity = (found.st_dev, found.st_ino)
            if not stat.S_ISREG(found.st_mode):
                continue
            if identity in seen:
                if aliased is not None:
                    aliased.add(candidate)
                continue
            seen.add(identity)
            out[candidate] = (found.st_mtime_ns, found.st_size)
    return out


def listed_below(relative: str) -> bool:
    """Whether a folder's listing would take the file at ``relative`` (a path below the folder), were it a
    regular file: no hidden part, a YAML ending (``_hidden`` and ``_yaml``, the rules ``_files_below`` walks
    by)."""
    return _yaml(relative) and not any(map(_hidden, relative.split(os.sep)))


def _files_below(folder: Path, *, nested: set[Path] | None, links: set[str] | None) -> list[str]:
    """YAML files under ``folder`` in sorted order (by path component: a folder's files come where its name
    sorts), hidden entries skipped (among them a ConfigMap volume's ``..data`` and timestamped folders);
    symlinked folders are not entered, symlinked files are listed (and added to ``links``). ``folder`` is
    added to ``nested`` if it has a visible subfolder.

    Each directory's entries are sorted once, by name, and walked in that order through a stack (no
    recursion limit): at thousands of files this is most of what a change costs before parsing."""
    found: list[str] = []
    top = os.fspath(folder)
    pending: list[tuple[str, bool]] = [(top, True)]  # (path, is a folder to open), next one last
    while pending:
        path, is_folder = pending.pop()
        if not is_folder:
            found.append(path)
            continue
        try:
            with os.scandir(path) as listing:
                entries = sorted(listing, key=_NAME, reverse=True)
        except OSError:
            continue  # unreadable, or gone since its parent was read
        for entry in entries:
            if _hidden(entry.name):
                continue
            try:
                is_folder = entry.is_dir()
            except OSError:
                continue  # a symlink loop: not a file to read either
            if is_folder:
                if nested is not None and path == top:
                    nested.add(folder)
                if not entry.is_symlink():
                    pending.append((entry.path, True))
            elif _yaml(entry.name):
                pending.append((entry.path, False))
                if links is not None and entry.is_symlink():
                    links.add(entry.path)
    return found


def load_file(path: str | Path, *, max_bytes: int = defaults.MAX_FILE_BYTES) -> LoadResult:
    """One file, on its own: duplicates across files are found by ``combine``."""
    try:
        data = _read_at_most(path, max_bytes + 1)
        if len(data) > max_bytes:
            size = max(os.stat(path).st_size, len(data))
            return _unread(path, f"{size} bytes, over the limit of {max_bytes} (--max-file-bytes)")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or "unreadable"
        return _unread(path, reason)
    return load_text(text, file=str(path))


def _read_at_most(path: str | Path, limit: int) -> bytes:
    """Up to ``limit`` bytes of the file, never more, even if it grows while it is read. It asks for the size
    the file has (plus one byte, to see whether it grew) rather than for ``limit``: a read of ``limit``
    bytes reserves that much memory first, which at thousands of files costs more than parsing a tenth of
    them. Read through the file descriptor: Python's file objects cost more to make than the read."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(descriptor, min(os.fstat(descriptor).st_size, limit - 1) + 1)
        while len(data) < limit:  # until the end of the file (a short read, or it grew)
            more = os.read(descriptor, limit - len(data))
            if not more:
                break
            data += more
        return data
    finally:
        os.close(descriptor)


def _unread(path: str | Path, reason: str) -> LoadResult:
    problem = Problem(severity=Severity.ERROR, file=str(path), message=f"cannot read file: {reason}")
    return LoadResult(objects=[], problems=[problem])

"""The loads of a folder's files as one load, kept up to date file by file.

``resources.parse.combine`` joins every file's result and looks for objects defined twice, hashing every
key: at 5,000 files (25,000 objects) that is about 10 ms, on every change. A change of one file needs less:
its objects replace the file's previous ones in the joined list, and only its keys that are new to it can
collide with another file's. While the folder holds no duplicate, ``replace`` does just that; once it does
(a user error, rare), every load goes through ``combine`` again, whose report of duplicates this does not
repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain

from controlplane.resources.parse import LoadResult, combine
from controlplane.resources.problems import ObjectKey, Problem, sorted_problems


class CombinedLoads:
    """One ``LoadResult`` from the results of files in load order, as ``combine`` makes it."""

    def __init__(self) -> None:
        self._results: dict[str, LoadResult] = {}
        """Each file's result, in load order."""
        self._owners: dict[ObjectKey, str] | None = None
        """Which file defines each key; None while some key is defined twice (``combine`` reports it)."""

    def load(self, results: Mapping[str, LoadResult], *, problems: Iterable[Problem]) -> LoadResult:
        """Every file's result, in load order, replacing what was combined before."""
        self._results = dict(results)
        owners = {loaded.key: path for path, result in self._results.items() for loaded in result.objects}
        held = sum(len(result.objects) for result in self._results.values())
        self._owners = owners if len(owners) == held else None
        return combine(self._results.values(), problems=problems)

    def replace(self, changed: Mapping[str, LoadResult], *, problems: Iterable[Problem]) -> LoadResult:
        """The files in ``changed`` (all of them files of the last ``load``) read again; the rest as they
        were. Costs a pass over the files' result lists, and key look-ups only for the changed files."""
        owners = self._owners
        if owners is None or not self._take(owners, changed):
            return self.load({**self._results, **changed}, problems=problems)
        objects = list(chain.from_iterable(result.objects for result in self._results.values()))
        found = list(problems)
        for result in self._results.values():
            found.extend(result.problems)
        return LoadResult(objects=objects, problems=sorted_problems(found))

    def _take(self, owners: dict[ObjectKey, str], changed: Mapping[str, LoadResult]) -> bool:
        """Puts ``changed`` in, with ``owners`` following; False (and nothing changed) when a changed file
        defines a key that another file defines, or that it defines twice."""
        claimed: dict[ObjectKey, str] = {}
        for path, result in changed.items():
            keys = [loaded.key for loaded in result.objects]
            if len(set(keys)) != len(keys):
                return False
            for key in keys:
                if owners.get(key, path) != path or claimed.setdefault(key, path) != path:
                    return False
        for path in changed:
            for loaded in self._results[path].objects:
                del owners[loaded.key]
        for path, result in changed.items():
            for loaded in result.objects:
                owners[loaded.key] = path
            self._results[path] = result
        return True

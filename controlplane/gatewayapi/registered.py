"""A table a translation registers things in by name (clusters, CA bundles, credential secrets), and its
values in name order (how the IR lists them), kept up to date from one translation to the next.

Replayed chunks of fragments (``gatewayapi.memo``) register theirs as the very same dicts as last time.
Filling a fresh dict with 10,000 clusters and listing them in name order on every change cost a few
milliseconds at 5,000 routes with policies. ``NamedTable.values`` instead compares this translation's
registrations with last time's by identity and patches last time's table and list with the few that differ. It
does so only where the outcome cannot depend on the order registrations come in (a later one with a name
replaces an earlier one): the dicts that are the same objects keep their order, and each name registered by
one that differs is registered by no other, before and now. Otherwise the table is filled again, in order, as
before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from operator import is_not
from typing import Generic, TypeVar

V = TypeVar("V")


class Registrations(Generic[V]):
    """One translation's registrations in one table, in the order they were made."""

    def __init__(self) -> None:
        self.pieces: list[Mapping[str, V]] = []
        self._loose: dict[str, V] | None = None
        """The last of ``pieces`` when registrations made one at a time go there: a dict of this
        translation's own, which no ``NamedTable`` has looked at yet."""

    def put(self, name: str, value: V) -> None:
        loose = self._loose
        if loose is None:
            loose = self._loose = {}
            self.pieces.append(loose)
        loose[name] = value

    def put_all(self, entries: Mapping[str, V]) -> None:
        """Registers ``entries``, which must not change afterwards (it is compared by identity)."""
        self.pieces.append(entries)
        self._loose = None

    def seal(self) -> list[Mapping[str, V]]:
        """The registrations so far; later ones go into dicts of their own, leaving these as they are."""
        self._loose = None
        return list(self.pieces)


class NamedTable(Generic[V]):
    """The values of the last translation's registrations in one table, in name order."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Nothing kept: the next ``values`` fills the table afresh."""
        self._pieces: list[Mapping[str, V]] = []
        """The last translation's, kept alive so that their ``id`` stays theirs."""
        self._table: dict[str, V] = {}
        self._counts: Counter[str] = Counter()
        """How many of ``_pieces`` register each name."""
        self._values: tuple[V, ...] = ()
        self._places: dict[str, int] | None = None
        """Each name's place in ``_values``: made when a value is first replaced in place."""

    def values(self, registrations: Registrations[V]) -> tuple[V, ...]:
        """The values of ``registrations``, each name's last, in name order: last time's very tuple when
        nothing differs."""
        pieces = registrations.seal()
        try:
            if not self._patched(pieces):
                self._fill(pieces)
        except BaseException:
            self._reset()  # half patched: the counts no longer match the table
            raise
        return self._values

    def _fill(self, pieces: list[Mapping[str, V]]) -> None:
        table: dict[str, V] = {}
        counts: Counter[str] = Counter()
        for piece in pieces:
            table.update(piece)
            counts.update(piece.keys())
        self._pieces, self._table, self._counts, self._places = pieces, table, counts, None
        self._values = tuple(map(table.__getitem__, sorted(table)))

    def _patched(self, pieces: list[Mapping[str, V]]) -> bool:
        """Brings the table up to date with ``pieces`` from last time's; False when that could depend on
        the order of registrations (then nothing is kept)."""
        before = self._pieces
        if not before:
            return False
        now_ids = set(map(id, pieces))
        before_ids = set(map(id, before))
        kept_now = [piece for piece in pieces if id(piece) in before_ids]
        kept_before = [piece for piece in before if id(piece) in now_ids]
        if len(kept_now) != len(kept_before) or any(map(is_not, kept_now, kept_before)):
            return False  # the same dicts in another order
        gone = [piece for piece in before if id(piece) not in now_ids]
        came = [piece for piece in pieces if id(piece) not in before_ids]
        if not gone and not came:
            self._pieces = pieces
            return True
        counts, table = self._counts, self._table
        if 2 * sum(map(len, gone)) > len(table):
            return False  # most of it differs (a first replay): filled again, in C
        removed: list[str] = []
        for piece in gone:
            for name in piece:
                if counts.pop(name, 0) != 1:
                    return False  # uncounted, or registered by another piece too: which wins depends on order
                removed.append(name)
        size = len(counts)
        for piece in came:
            counts.update(piece.keys())
        if len(counts) - size != sum(map(len, came)):
            return False  # a name registered twice now
        names_before = len(table)
        for piece in came:
            table.update(piece)
        dropped = [name for name in removed if name not in counts]
        for name in dropped:
            del table[name]
        self._pieces = pieces
        if dropped or len(table) != names_before:  # other names: listed again
            self._places = None
            self._values = tuple(map(table.__getitem__, sorted(table)))
            return True
        places = self._places
        if places is None:
            places = self._places = {name: index for index, name in enumerate(sorted(table))}
        values = list(self._values)
        for piece in came:
            for name, value in piece.items():
                values[places[name]] = value
        self._values = tuple(values)
        return True

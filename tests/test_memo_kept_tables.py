"""What the memo keeps from one translation to the next instead of filling afresh: the judged objects
(``gatewayapi.judged``) and registered tables (``gatewayapi.registered``) against filling them afresh, over
random sequences of translations that hand over the very same collections again, other ones, the same ones
in another order or twice, and names or keys shared between them; and ``kept``'s inputs, which an equal copy
replaces so that it is not compared on every later translation."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.gatewayapi.judged import JudgedKeys, Pieces
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.registered import NamedTable, Registrations
from controlplane.resources.groups import INFERENCE_POOL_KIND
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet

_NAMES = [f"n{index}" for index in range(8)]
_VALUES = [f"v{index}" for index in range(3)]

_PIECE = st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=4)
_STEP = st.one_of(
    st.tuples(st.just("piece"), st.integers(0, 5)),
    st.tuples(st.just("put"), st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES))),
)


@settings(max_examples=400, deadline=None)
@given(
    pool=st.lists(_PIECE, min_size=6, max_size=6),
    translations=st.lists(st.lists(_STEP, max_size=8), max_size=8),
)
def test_named_table_lists_what_filling_afresh_lists(
    pool: list[dict[str, str]], translations: list[Any]
) -> None:
    # Each dict's values its own: which registration of a name wins shows.
    pool = [{name: f"{value}/{index}" for name, value in piece.items()} for index, piece in enumerate(pool)]
    table: NamedTable[str] = NamedTable()
    for steps in translations:
        registrations: Registrations[str] = Registrations()
        filled: dict[str, str] = {}
        for step, what in steps:
            if step == "piece":
                registrations.put_all(pool[what])  # the very same dict as in other translations
                filled.update(pool[what])
            else:
                name, value = what
                value = f"{value}/put"  # a new object each time: identity shows which one is listed
                registrations.put(name, value)
                filled[name] = value
        listed = table.values(registrations)
        expected = tuple(filled[name] for name in sorted(filled))
        assert listed == expected
        assert all(map(_same, listed, expected))
        assert table.values(registrations) is listed  # asked again: nothing differs


def test_named_table_gives_back_the_same_tuple_when_nothing_differs() -> None:
    pieces = [{f"c{index}": f"v{index}"} for index in range(4)]
    table: NamedTable[str] = NamedTable()
    first = table.values(_registered(pieces))
    assert table.values(_registered(pieces)) is first
    changed = [*pieces[:2], {"c2": "other"}, pieces[3]]
    assert table.values(_registered(changed)) == ("v0", "v1", "other", "v3")


def test_named_table_follows_the_same_dicts_in_another_order() -> None:
    first, second = {"c": "first", "d": "d"}, {"c": "second"}
    table: NamedTable[str] = NamedTable()
    assert table.values(_registered([first, second])) == ("second", "d")
    assert table.values(_registered([second, first])) == ("first", "d")  # the later one's wins


def test_named_table_broken_partway_through_a_patch_fills_afresh_next_time() -> None:
    pieces = [{f"c{index}": f"v{index}"} for index in range(8)]
    table: NamedTable[str] = NamedTable()
    table.values(_registered(pieces))
    breaking = _BreaksPartwayThrough({"c9": "new", "c0": "new"})
    with pytest.raises(_Broken):  # c0 no longer counted, c9 half registered
        table.values(_registered([*pieces[1:], breaking]))
    for registered in ([*pieces[1:], {"c9": "v9"}], pieces[2:], [{"c1": "other"}, *pieces[2:]]):
        fresh: NamedTable[str] = NamedTable()
        assert table.values(_registered(registered)) == fresh.values(_registered(registered))


def test_named_table_fills_afresh_when_a_piece_had_names_it_did_not_count() -> None:
    pieces = [{f"c{index}": f"v{index}"} for index in range(8)]
    table: NamedTable[str] = NamedTable()
    table.values(_registered(pieces))
    pieces[0]["c9"] = "v9"  # changed after it was registered, which ``put_all`` forbids
    assert table.values(_registered(pieces[1:])) == tuple(f"v{index}" for index in range(1, 8))


class _Broken(Exception):
    pass


class _BreaksPartwayThrough(Mapping[str, str]):
    """Registrations that fail after their first name when gone through: an interrupted patch."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        yield next(iter(self._entries))
        raise _Broken


_KEYS = [
    ObjectKey("g", kind, "ns", f"o{index}")
    for kind in ("AIServiceBackend", INFERENCE_POOL_KIND)
    for index in range(5)
]
_JUDGED = st.tuples(
    st.lists(st.integers(0, 5), max_size=6),
    st.sets(st.sampled_from(_KEYS), max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(
    pool=st.lists(st.frozensets(st.sampled_from(_KEYS), max_size=4), min_size=6, max_size=6),
    translations=st.lists(_JUDGED, max_size=8),
)
def test_judged_keys_are_the_union_of_what_was_judged(
    pool: list[frozenset[ObjectKey]], translations: list[Any]
) -> None:
    judged = JudgedKeys()
    before: set[ObjectKey] = set()
    for chosen, loose in translations:
        pieces = {id(pool[index]): pool[index] for index in chosen}
        version = judged.version
        judged.settle(pieces, set(loose))
        expected = set(loose).union(*pieces.values())
        assert set(judged.keys) == expected
        assert judged.pools == {key for key in expected if key.kind == INFERENCE_POOL_KIND}
        assert (judged.version is version) == (expected == before)
        before = expected


def test_judged_keys_follow_a_translation_that_judges_more_after_settling() -> None:
    judged, pieces, loose = JudgedKeys(), Pieces(), set[ObjectKey]()
    judged.settle(pieces, loose)
    piece = frozenset(_KEYS[:2])
    pieces[id(piece)] = piece
    loose.add(_KEYS[5])
    judged.settle(pieces, loose)  # the very same dict and set, added to
    assert set(judged.keys) == {*_KEYS[:2], _KEYS[5]}
    assert judged.pools == {_KEYS[5]}


def test_judged_keys_broken_partway_through_settling_count_afresh_next_time() -> None:
    pool = [frozenset({key}) for key in _KEYS]
    judged = JudgedKeys()
    judged.settle({id(piece): piece for piece in pool[:8]}, set())
    version = judged.version
    breaking = _JudgedPartway([_KEYS[1], _KEYS[9]])
    with pytest.raises(_Broken):  # the first key no longer counted, the last half counted
        judged.settle({id(piece): piece for piece in [*pool[1:8], breaking]}, set())
    for chosen, loose in ((pool[1:9], set()), (pool[2:8], {_KEYS[0]}), (pool[2:8], set())):
        pieces: Pieces = {id(piece): piece for piece in chosen}
        fresh = JudgedKeys()
        judged.settle(pieces, set(loose))
        fresh.settle(pieces, set(loose))
        assert set(judged.keys) == set(fresh.keys)
        assert judged.pools == fresh.pools
        assert judged.version is not version  # statuses made again, not taken over
        version = judged.version


def test_judged_keys_count_afresh_when_a_piece_had_keys_they_did_not_count() -> None:
    pool = [{key} for key in _KEYS[:8]]
    judged = JudgedKeys()
    judged.settle({id(piece): piece for piece in pool}, set())
    version = judged.version
    pool[0].add(_KEYS[9])  # changed after it was judged: pieces are to be immutable
    judged.settle({id(piece): piece for piece in pool[1:]}, set())
    assert set(judged.keys) == set(_KEYS[1:8])
    assert judged.pools == {key for key in _KEYS[1:8] if key.kind == INFERENCE_POOL_KIND}
    assert judged.version is not version


class _JudgedPartway(Collection[ObjectKey]):
    """Judged keys that fail after the first when gone through: an interrupted settling."""

    def __init__(self, keys: list[ObjectKey]) -> None:
        self._keys = keys

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[ObjectKey]:
        yield self._keys[0]
        raise _Broken


class _Counted:
    """An input that counts how often it is compared by value."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _Counted.compared += 1
        return isinstance(other, _Counted)

    __hash__ = object.__hash__


def test_kept_compares_an_input_given_again_as_an_equal_copy_once() -> None:
    _Counted.compared = 0  # a class's counter: whatever ran before in this process counted too
    memo = TranslationMemo()
    first, copy = (_Counted(),), (_Counted(),)
    results: list[list[object]] = []
    for inputs in (first, copy, copy, copy):  # an object loaded again unchanged, then left alone
        memo.begin(ResourceSet())
        memo.bind(lambda _effect: None, judged=lambda _keys: None, registered=lambda _tables: None)
        results.append(memo.kept("step", inputs, list))
        memo.finish()
    assert all(result is results[0] for result in results)  # equal inputs: computed once
    assert _Counted.compared == 1  # the copy compared once; after that it is the very input kept


def _registered(pieces: Sequence[Mapping[str, str]]) -> Registrations[str]:
    registrations: Registrations[str] = Registrations()
    for piece in pieces:
        registrations.put_all(piece)
    return registrations


def _same(left: object, right: object) -> bool:
    return left is right

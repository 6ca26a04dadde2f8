"""A response serialised in slices is byte for byte the response serialised whole (``xds/server/reply.py``).

The slices are encoded by the streams' own entries, straight from each resource's serialised bytes (SotW's
joined from ``Any`` headers, Delta's built as messages); the whole response is built from
``XdsResource.packed`` messages.

Checked on the Envoy resources of every example and translation golden case, with slices small enough that
every type with more than two resources is cut (also after a resource that brings one to 400 bytes), for
both ADS variants' response messages with every field the streams set, joined on the loop and (as a large
response is) in a worker thread. Slices end at a count of resources or with the resource that brings one to
a size, whichever comes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import translate
from controlplane.sources.file_reading import load_paths
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import ENDPOINT, TYPE_URLS
from controlplane.xds.server import reply, thread_work
from controlplane.xds.server.delta import _entry as delta_entry
from controlplane.xds.server.reply import BuiltEntries, Entries, PackedEntries, Reply
from controlplane.xds.server.sotw import CONTROL_PLANE
from controlplane.xds.server.turns import Turns

_TESTDATA = Path(__file__).parent / "testdata"
_CASES = sorted(
    [
        *(path for path in (Path(__file__).parent.parent / "examples").iterdir() if path.is_dir()),
        *(_TESTDATA / "translate").glob("*.in.yaml"),
    ]
)


def _resources(case: Path) -> dict[str, list[XdsResource]]:
    options = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
    snapshot = translate(load_paths([case]).resource_set(), options=options).snapshot()
    return {
        type_url: [snapshot.get(type_url)[name] for name in sorted(snapshot.get(type_url))]
        for type_url in TYPE_URLS
    }


def _joined(entries: PackedEntries, resources: Sequence[XdsResource]) -> bytes:
    return b"".join(piece for piece, _ in entries.encode(resources))


def _delta_entry(resource: XdsResource) -> discovery_pb2.Resource:
    return discovery_pb2.Resource(name=resource.name, version=resource.version, resource=resource.packed)


@pytest.mark.parametrize(
    "join_in_thread_bytes", [0, thread_work.BYTES_WORTH_A_THREAD], ids=["joined-in-thread", "joined"]
)
@pytest.mark.parametrize("case", _CASES, ids=lambda path: path.name.removesuffix(".in.yaml"))
def test_sliced_responses_are_the_whole_responses_bytes(
    case: Path, join_in_thread_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thread_work, "BYTES_WORTH_A_THREAD", join_in_thread_bytes)
    for type_url, resources in _resources(case).items():
        delta_whole = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info="snapshot-7",
            type_url=type_url,
            nonce="12",
            removed_resources=["gone-a", "gone-b"],
            control_plane=CONTROL_PLANE,
        )
        delta_whole.resources.extend(_delta_entry(resource) for resource in resources)
        delta = Reply(
            head=discovery_pb2.DeltaDiscoveryResponse(system_version_info="snapshot-7"),
            resources=resources,
            entries=BuiltEntries(
                response_type=discovery_pb2.DeltaDiscoveryResponse,
                entry=delta_entry,
                slice_resources=2,
                slice_bytes=400,
            ),
            tail=discovery_pb2.DeltaDiscoveryResponse(
                type_url=type_url,
                nonce="12",
                removed_resources=["gone-a", "gone-b"],
                control_plane=CONTROL_PLANE,
            ),
        )
        whole = delta_whole.SerializeToString(deterministic=True)
        assert asyncio.run(delta.serialize(turns=Turns())) == whole
        sotw_whole = discovery_pb2.DiscoveryResponse(
            version_info="v1", type_url=type_url, nonce="3", control_plane=CONTROL_PLANE
        )
        sotw_whole.resources.extend(resource.packed for resource in resources)
        sotw = Reply(
            head=discovery_pb2.DiscoveryResponse(version_info="v1"),
            resources=resources,
            entries=PackedEntries(type_url, slice_resources=2, slice_bytes=400),
            tail=discovery_pb2.DiscoveryResponse(type_url=type_url, nonce="3", control_plane=CONTROL_PLANE),
        )
        assert asyncio.run(sotw.serialize(turns=Turns())) == sotw_whole.SerializeToString(deterministic=True)
        sotw_bytes = asyncio.run(sotw.serialize(turns=Turns()))
        assert discovery_pb2.DiscoveryResponse.FromString(sotw_bytes) == sotw_whole


def _content(name: str, serialized: bytes) -> XdsResource:
    """A load assignment's place in a response holding ``serialized`` as its bytes (any bytes will do: they
    are copied, never parsed)."""
    return XdsResource(
        type_url=ENDPOINT,
        name=name,
        version="v",
        serialized=serialized,
        dependencies=frozenset(),
        warming=frozenset(),
    )


@pytest.mark.parametrize("length", [0, 1, 127, 128, 16_383, 16_384, 2_097_152])
def test_packed_entries_are_the_anys_bytes_at_every_length_of_varint(length: int) -> None:
    # Contents whose lengths take one to four bytes of varint, and the empty content proto3 leaves out.
    resources = [_content(f"r{index}", bytes([index]) * (length + index)) for index in range(2)]
    whole = discovery_pb2.DiscoveryResponse()
    whole.resources.extend(resource.packed for resource in resources)
    assert _joined(PackedEntries(ENDPOINT), resources) == whole.SerializeToString(deterministic=True)


def test_the_any_headers_of_a_type_are_bounded_and_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reply, "_ANY_HEADERS_KEPT", 8)
    resources = [_content(f"r{length}", b"x" * length) for length in range(30)]
    whole = discovery_pb2.DiscoveryResponse()
    whole.resources.extend(resource.packed for resource in resources)
    reply._any_headers(ENDPOINT).clear()  # what earlier tests left
    for _ in range(2):  # the second time through, the lengths not kept are made again
        assert _joined(PackedEntries(ENDPOINT), resources) == whole.SerializeToString(deterministic=True)
        # The first lengths met stay: a full table is not emptied (every length would be a miss again).
        assert sorted(reply._any_headers(ENDPOINT)) == list(range(8))


@pytest.mark.parametrize("variant", ["sotw", "delta"])
def test_slices_end_at_a_count_of_resources_or_with_the_one_that_reaches_a_size(variant: str) -> None:
    resources = [_content(f"r{index}", bytes([index]) * 100) for index in range(10)]
    whole: Any  # generated classes are untyped
    if variant == "sotw":
        entries: Entries = PackedEntries(ENDPOINT, slice_resources=4, slice_bytes=250)
        whole = discovery_pb2.DiscoveryResponse()
        whole.resources.extend(resource.packed for resource in resources)
    else:
        entries = BuiltEntries(
            response_type=discovery_pb2.DeltaDiscoveryResponse,
            entry=delta_entry,
            slice_resources=4,
            slice_bytes=250,
        )
        whole = discovery_pb2.DeltaDiscoveryResponse()
        whole.resources.extend(_delta_entry(resource) for resource in resources)
    slices = list(entries.encode(resources))
    # Slices of at most 4 resources, each ending with the resource whose content brings it to 250 bytes.
    assert [count for _, count in slices] == [3, 1, 3, 1, 2]
    held = [len(type(whole).FromString(piece).resources) for piece, _ in slices]
    assert held == [3, 1, 3, 1, 2]
    assert b"".join(piece for piece, _ in slices) == whole.SerializeToString(deterministic=True)

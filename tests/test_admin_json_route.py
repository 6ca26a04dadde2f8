"""The admin port's JSON pages (``/status``): what a client reads over real HTTP from a running AdminServer.

The pages are streamed as they are encoded (a status page of thousands of objects is never held whole), so
these check that the streamed text is the same JSON the document holds, laid out for reading, whether the
document's lists are lists or generators and whether the page needs one write or many.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
from prometheus_client import CollectorRegistry

from controlplane.admin import AdminServer

_OBJECTS = 3_000
"""Enough entries for a page of several hundred KiB: the handler writes it in many pieces."""


def _entry(index: int) -> dict[str, object]:
    return {
        "name": f"route-{index}",
        "conditions": [{"type": "Accepted", "status": "True", "message": 'ok "quoted" \u00e9'}],
        "parents": [f"ns/gw-{index % 3}"],
    }


def _entries() -> Iterator[dict[str, object]]:
    return (_entry(index) for index in range(_OBJECTS))


def _document() -> dict[str, object]:
    return {
        "snapshotVersion": None,
        "loads": 2,
        "problems": ["a problem", "another"],
        "source": {"files": ["a.yaml", "b.yaml"], "watch": {"recursive": False}},
        "empty": [],
        "objects": _entries(),
    }


async def _fetch(path: str, *, times: int = 1) -> list[httpx.Response]:
    """``times`` requests for ``path`` to one AdminServer serving ``_document`` there."""
    admin = AdminServer(registry=CollectorRegistry(), ready=lambda: True)
    admin.add_json_route(path, _document)
    port = await admin.start()
    try:
        async with httpx.AsyncClient() as client:
            return [await client.get(f"http://127.0.0.1:{port}{path}", timeout=30) for _ in range(times)]
    finally:
        await admin.stop()


def test_a_json_page_is_the_documents_json_with_one_list_entry_per_line() -> None:
    (reply,) = asyncio.run(_fetch("/status"))

    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    expected = {**_document(), "objects": list(_entries())}
    assert reply.json() == expected
    lines = reply.text.splitlines()
    assert lines[0] == "{"
    assert lines[-1] == "}"
    assert reply.text.endswith("}\n")
    # Keys sorted at every level; each object of a long list on a line of its own, indented under its key.
    assert list(json.loads(reply.text)) == sorted(expected)
    assert lines[1] == '  "empty": [],'
    object_lines = [line for line in lines if line.startswith('    {"conditions"')]
    assert len(object_lines) == _OBJECTS
    assert json.loads(object_lines[0].rstrip(",")) == _entry(0)
    assert '    "files": ["a.yaml", "b.yaml"],' in lines
    assert '    "watch": {"recursive": false}' in lines


def test_a_json_page_is_whole_on_every_request() -> None:
    # The document is asked for again each time: a generator used up by one request is not reused.
    replies = asyncio.run(_fetch("/status", times=2))

    assert [len(reply.json()["objects"]) for reply in replies] == [_OBJECTS, _OBJECTS]
    assert replies[0].text == replies[1].text

"""Helpers for the end-to-end tests: a running local stack per module and what its answers say."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from controlplane.devtools.fake_backend import Normal
from controlplane.devtools.stack import LocalStack

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}]}

T = TypeVar("T")


@contextmanager
def running_stack(manifests: Path, workdir: Path, *, delta: bool = False) -> Iterator[LocalStack]:
    with LocalStack(manifests, move_ports=True, delta=delta, workdir=workdir) as stack:
        yield stack


def reset_backends(stack: LocalStack) -> None:
    for backend in stack.backends.values():
        backend.set_mode(Normal())
        backend.clear()


def answered_by(reply: httpx.Response) -> str:
    """The fake backend that produced a 200 answer (its name heads the completion's content)."""
    assert reply.status_code == 200, f"HTTP {reply.status_code}: {reply.text}"
    content: str = reply.json()["choices"][0]["message"]["content"]
    return content.split(",", 1)[0]

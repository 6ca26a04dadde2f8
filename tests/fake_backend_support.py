"""What the fake backend's tests share: a started backend named ``eu`` serving ``gpt-4o``, a client of it,
and the chat request they send.

The fixtures are imported by name (``from tests.fake_backend_support import backend as backend``) by the
two modules that use them, rather than put in ``conftest.py``, where ``backend`` and ``client`` would be
every module's fixtures (many define their own of those names).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.fake_backend import FakeBackend

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello to me"}]}


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    fake = FakeBackend(name="eu", model="gpt-4o")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def client(backend: FakeBackend) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.url, timeout=5.0) as http:
        yield http

"""Log set-up: a logged traceback names the failure but shows no frame's local values (a local may hold a
key), in either form, whichever exception formatter structlog would pick by default."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

import pytest
import structlog

from controlplane.log import configure_logging

MARKER = "sk-local-3e91b7"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def _locals_formatter(
    stream: TextIO, exc_info: tuple[type[BaseException], BaseException, TracebackType | None]
) -> None:
    """What structlog's default is when rich is installed: each frame printed with its locals."""
    for frame, _ in traceback.walk_tb(exc_info[2]):
        stream.write(f"\n{frame.f_code.co_name} locals: {frame.f_locals!r}")
    stream.write(f"\n{exc_info[0].__name__}: {exc_info[1]}")


def _refuse() -> None:
    client_secret = MARKER
    raise ValueError(f"refused ({len(client_secret)} characters)")


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("json", [False, True], ids=["console", "json"])
def test_a_traceback_shows_no_local_values(
    json: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(structlog.dev, "default_monochrome_exception_formatter", _locals_formatter)
    configure_logging(json=json, level="info")
    try:
        _refuse()
    except ValueError:
        structlog.get_logger("test").exception("minting failed")
    logged = capsys.readouterr().err
    assert "minting failed" in logged
    assert "ValueError: refused (15 characters)" in logged
    assert "_refuse" in logged
    assert MARKER not in logged

"""A command's writes to standard output, told apart from everything else that can break a pipe.

``controlplane translate ... | head`` closes the pipe long before the document ends: that is the reader
leaving, to end quietly. A ``BrokenPipeError`` from anything else (a socket) is a failure to show, so only
writes made inside ``writing_stdout`` become ``ReaderLeft``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class ReaderLeft(Exception):
    """Whoever reads the command's standard output closed it before the end."""


@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Writes to ``sys.stdout`` inside are flushed at the end, so a reader gone is noticed here rather than
    at the interpreter's exit; a broken pipe meanwhile becomes ``ReaderLeft``. Keep only writes inside."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError as error:
        raise ReaderLeft from error

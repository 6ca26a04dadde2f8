"""A fake OpenAI-compatible model backend for the demo, the tests and the benchmarks.

Routing, model rewriting, credential injection and failover are all decided inside Envoy; the only way to see
them work is to put something behind Envoy that records what arrived and fails on command. ``FakeBackend`` is
that: it answers chat/text completions and the model list with its configured name and model, records every
request, and switches at runtime between answering, erroring (429/5xx), being slow, stalling mid-stream,
holding a stream after its first chunk until released, resetting, and refusing connections; ``/metrics``
reports a load the test sets, in vLLM's names. Run one by hand with
``python -m controlplane.devtools.fake_backend --name eu --model gpt-4o --port 8081``.
"""

from controlplane.devtools.fake_backend._responses import BACKEND_HEADER
from controlplane.devtools.fake_backend.metrics import ServerLoad
from controlplane.devtools.fake_backend.modes import (
    HoldStream,
    Mode,
    Normal,
    Refuse,
    Reset,
    Slow,
    StallStream,
    Status,
)
from controlplane.devtools.fake_backend.recorder import ReceivedRequest, RequestPredicate
from controlplane.devtools.fake_backend.server import FakeBackend, TlsFiles, TlsKeyPair

__all__ = [
    "BACKEND_HEADER",
    "FakeBackend",
    "HoldStream",
    "Mode",
    "Normal",
    "ReceivedRequest",
    "Refuse",
    "RequestPredicate",
    "Reset",
    "ServerLoad",
    "Slow",
    "StallStream",
    "Status",
    "TlsFiles",
    "TlsKeyPair",
]

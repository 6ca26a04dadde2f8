"""``python -m controlplane.devtools.fake_backend``: one fake backend in the foreground, for trying routes by
hand."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from controlplane.commands.argument_types import add_log_level_argument, port_number
from controlplane.devtools.fake_backend.server import FakeBackend, TlsFiles
from controlplane.log import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controlplane.devtools.fake_backend",
        description="Serve a fake OpenAI-compatible backend. Logs go to stderr; stdout has the URL line "
        "only.",
    )
    parser.add_argument("--name", required=True, help="backend name, echoed in every answer")
    parser.add_argument("--model", required=True, help="model name the backend answers as")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=0, help="0 lets the OS choose (printed on start)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain; serves HTTPS with --tls-key")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    add_log_level_argument(parser)
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    configure_logging(json=False, level=args.log_level)
    tls = TlsFiles(cert_file=args.tls_cert, key_file=args.tls_key) if args.tls_cert is not None else None

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    with FakeBackend(name=args.name, model=args.model, host=args.host, port=args.port, tls=tls) as backend:
        # One parseable line, so a script that passed --port 0 learns the port.
        print(f"fake backend {backend.name} ({backend.model}) listening on {backend.url}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

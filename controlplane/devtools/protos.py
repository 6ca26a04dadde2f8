"""Compiles our own gRPC API (``protos/``) into the Python modules the package imports.

The generated modules are committed so that a runtime install needs no compiler; this module writes them
(``make protos``) and, with ``--check``, says whether the committed ones still match the ``.proto`` files
(a test runs that). ``grpcio-tools`` is pinned in the dev extra, so the output is the same everywhere.
Only messages are generated: services are registered by hand with gRPC's generic handlers, as the ADS
server is, so the runtime does not depend on the exact ``grpcio`` version that generated code demands.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from controlplane.devtools.gotools import REPO

PROTOS = REPO / "protos"
GENERATED = REPO / "controlplane" / "_proto"
SOURCES = {"aixds/controlplane/v1/proxy_status.proto": "proxy_status_pb2"}
"""Each .proto under ``protos/`` -> its module name in ``controlplane/_proto``."""


def generate(output: Path) -> list[Path]:
    """Writes the modules (``.py`` and the ``.pyi`` type stub) into ``output``; returns their paths."""
    from grpc_tools import protoc  # dev extra only

    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for proto, module in SOURCES.items():
            arguments = ["protoc", f"-I{PROTOS}", f"--python_out={scratch}", f"--pyi_out={scratch}", proto]
            if protoc.main(arguments) != 0:
                raise RuntimeError(f"protoc failed on {PROTOS / proto}")
            for suffix in (".py", ".pyi"):
                made = Path(scratch) / proto.replace(".proto", "_pb2" + suffix)
                target = output / (module + suffix)
                shutil.copyfile(made, target)
                written.append(target)
    return written


def stale_modules() -> list[str]:
    """Committed modules that differ from what the .proto files generate now."""
    with tempfile.TemporaryDirectory() as fresh:
        return [
            path.name
            for path in generate(Path(fresh))
            if not (GENERATED / path.name).is_file()
            or (GENERATED / path.name).read_bytes() != path.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed modules are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_modules()
        for name in stale:
            print(f"controlplane/_proto/{name} does not match protos/: run make protos", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(GENERATED):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

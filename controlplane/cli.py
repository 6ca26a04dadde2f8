"""The `controlplane` command: one parser, one module per subcommand.

Each subcommand lives in its own module under `controlplane.commands` and exposes a `COMMAND` object that
follows the `Subcommand` protocol; adding a subcommand means adding a module and its name to
`_SUBCOMMAND_MODULES`. Subcommand modules keep heavy imports (grpc, Envoy protos) inside `run` so that
`controlplane --help` and `controlplane bootstrap` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from controlplane.commands._output import ReaderLeft

_SUBCOMMAND_MODULES = (
    "controlplane.commands.bootstrap",
    "controlplane.commands.crds",
    "controlplane.commands.proxy_status",
    "controlplane.commands.serve",
    "controlplane.commands.translate",
)


class Subcommand(Protocol):
    """What `main` needs from a subcommand module's `COMMAND`."""

    name: str
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Execute and return the process exit code."""


def _load_subcommands() -> list[Subcommand]:
    commands: list[Subcommand] = [importlib.import_module(name).COMMAND for name in _SUBCOMMAND_MODULES]
    return sorted(commands, key=lambda command: command.name)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="controlplane", description="Envoy xDS control plane for AI inference routing."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _load_subcommands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `controlplane` console script and of `python -m controlplane`."""
    args = build_parser().parse_args(argv)
    command: Subcommand = args._command
    try:
        return command.run(args)
    except ReaderLeft:
        # No traceback; and as stdout is a pipe no one reads any more, it is pointed at /dev/null so that
        # the interpreter's last flush at exit does not fail on it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``controlplane crds [--output DIR] [--check]``: write our CRDs, generated from the models, or check them.

``make crds`` runs it on the repository's ``crds/``; ``--check`` exits 1 when that folder is out of step
with the models (a CI guard besides the test that does the same).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from controlplane.commands._output import writing_stdout


@dataclass(frozen=True)
class _Crds:
    name: str = "crds"
    help: str = "Write the CustomResourceDefinitions of our kinds (generated from the models) into a folder."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--output", type=Path, default=Path("crds"), metavar="DIR", help="the folder (default: crds)"
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 and say which files differ when DIR is out of step with the models",
        )

    def run(self, args: argparse.Namespace) -> int:
        from controlplane.crdgen.render import drift, write

        if args.check:
            problems = drift(args.output)
            for problem in problems:
                print(f"controlplane crds: {problem}", file=sys.stderr)
            if problems:
                print("controlplane crds: run `make crds` to regenerate", file=sys.stderr)
            return 1 if problems else 0
        written = write(args.output)  # outside: a broken pipe writing the files is no reader that left
        with writing_stdout():
            for path in written:
                print(path)
        return 0


COMMAND = _Crds()

"""``controlplane translate PATH... [-o yaml|json]``: print what Envoy would be sent, and every problem.

A contract other tools rely on: stdout is one document with keys ``listeners``, ``routes``, ``clusters``,
``endpoints`` (plus ``secrets``, redacted) and ``status``; stderr has one line per problem,
``FILE:DOC_INDEX: Kind/namespace/name: field.path: message``; the exit code is 0 when every object was
accepted and 1 otherwise. The accepted rest is printed either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import yaml

from controlplane.commands._output import writing_stdout
from controlplane.commands._pipeline_args import (
    add_file_limit_arguments,
    add_pipeline_arguments,
    file_limits,
    pipeline_options,
)


@dataclass(frozen=True)
class _Translate:
    name: str = "translate"
    help: str = "Translate manifests to Envoy resources and print them with each object's status."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_pipeline_arguments(parser)
        add_file_limit_arguments(parser)
        parser.add_argument(
            "-o",
            "--output",
            choices=("yaml", "json"),
            default="yaml",
            help="the document's format (default yaml)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from controlplane.pipeline import translate
        from controlplane.render import envoy_document, status_document
        from controlplane.resources.problems import Severity, sorted_problems
        from controlplane.sources.file_reading import load_paths

        loaded = load_paths(args.paths, limits=file_limits(args))
        result = translate(loaded.resource_set(), options=pipeline_options(args))
        problems = sorted_problems([*loaded.problems, *result.problems])
        document = {**envoy_document(result.envoy), "status": status_document(result.statuses)}
        try:
            with writing_stdout():
                if args.output == "json":
                    json.dump(document, sys.stdout, indent=2, sort_keys=False)
                    sys.stdout.write("\n")
                else:
                    yaml.safe_dump(document, sys.stdout, sort_keys=False, default_flow_style=False)
        finally:
            # Also when the reader left early (`translate ... | head`): the problems are what it was run for.
            for problem in problems:
                print(problem.format(), file=sys.stderr)
        return 1 if any(problem.severity is Severity.ERROR for problem in problems) else 0


COMMAND = _Translate()

"""``controlplane serve PATH... [--xds-port 18000] [--admin-port 19000]``: run the control plane on files.

Loads the YAML files and directories, serves the translation over ADS, watches the files and pushes every
settled change. SIGTERM or SIGINT drains the xDS streams before exiting, so Envoys reconnect elsewhere
with their configuration intact.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from controlplane.commands._translation import add_translation_arguments, translate_options

DEFAULT_XDS_PORT = 18000
DEFAULT_ADMIN_PORT = 19000


@dataclass(frozen=True)
class _Serve:
    name: str = "serve"
    help: str = "Serve Envoy configuration over ADS from YAML files, reloading them on change."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_translation_arguments(parser)
        parser.add_argument("--xds-port", type=int, default=DEFAULT_XDS_PORT, metavar="N")
        parser.add_argument("--admin-port", type=int, default=DEFAULT_ADMIN_PORT, metavar="N")
        parser.add_argument(
            "--address", default="0.0.0.0", help="address the xDS and admin ports listen on (default 0.0.0.0)"
        )
        parser.add_argument(
            "--debounce",
            type=float,
            default=0.3,
            metavar="SECONDS",
            help="quiet time after file changes before reloading (default 0.3)",
        )
        parser.add_argument(
            "--envoy-drain-seconds",
            type=float,
            default=600.0,
            metavar="SECONDS",
            help="Envoy's --drain-time-s: how long a replaced listener's routes and clusters are kept (600)",
        )
        parser.add_argument("--log-format", choices=("console", "json"), default="console")
        parser.add_argument("--log-level", default="info")

    def run(self, args: argparse.Namespace) -> int:
        import asyncio

        from controlplane.log import configure_logging
        from controlplane.serving import ServeOptions, serve

        configure_logging(json=args.log_format == "json", level=args.log_level)
        options = ServeOptions(
            paths=tuple(args.paths),
            address=args.address,
            xds_port=args.xds_port,
            admin_port=args.admin_port,
            translation=translate_options(args),
            debounce_seconds=args.debounce,
            envoy_drain_seconds=args.envoy_drain_seconds,
        )
        asyncio.run(serve(options))
        return 0


COMMAND = _Serve()

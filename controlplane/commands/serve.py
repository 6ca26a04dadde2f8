"""``controlplane serve PATH... [--xds-port 18000] [--admin-port 19000]``: run the control plane on files.

Loads the YAML files and directories, serves the translation over ADS, watches the files and pushes every
settled change. SIGTERM or SIGINT drains the xDS streams before exiting, so Envoys reconnect elsewhere
with their configuration intact.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from controlplane import defaults
from controlplane.commands._pipeline_args import add_pipeline_arguments, pipeline_options


@dataclass(frozen=True)
class _Serve:
    name: str = "serve"
    help: str = "Serve Envoy configuration over ADS from YAML files, reloading them on change."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_pipeline_arguments(parser)
        parser.add_argument("--xds-port", type=int, default=defaults.XDS_PORT, metavar="N")
        parser.add_argument("--admin-port", type=int, default=defaults.ADMIN_PORT, metavar="N")
        parser.add_argument(
            "--address",
            default=defaults.BIND_ADDRESS,
            help=f"address the xDS and admin ports listen on (default {defaults.BIND_ADDRESS})",
        )
        parser.add_argument(
            "--debounce",
            type=float,
            default=defaults.DEBOUNCE_SECONDS,
            metavar="SECONDS",
            help=f"quiet time after file changes before reloading (default {defaults.DEBOUNCE_SECONDS})",
        )
        parser.add_argument(
            "--envoy-drain-seconds",
            type=float,
            default=defaults.ENVOY_DRAIN_SECONDS,
            metavar="SECONDS",
            help="Envoy's --drain-time-s: how long a replaced listener's routes and clusters are kept "
            f"(default {defaults.ENVOY_DRAIN_SECONDS:g})",
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
            translation=pipeline_options(args),
            debounce_seconds=args.debounce,
            envoy_drain_seconds=args.envoy_drain_seconds,
        )
        asyncio.run(serve(options))
        return 0


COMMAND = _Serve()

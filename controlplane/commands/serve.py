"""``controlplane serve (PATH... | --kubernetes) [--xds-port 18000] [--admin-port 19000]``: the control plane.

Loads the YAML files and directories (or watches a Kubernetes API server), serves the translation over
ADS and pushes every settled change; in Kubernetes each object's verdict is written to its status.
SIGTERM or SIGINT drains the xDS streams before exiting, so Envoys reconnect elsewhere with their
configuration intact.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane import defaults
from controlplane.commands._pipeline_args import (
    add_file_limit_arguments,
    add_pipeline_arguments,
    file_limits,
    pipeline_options,
)
from controlplane.commands.argument_types import (
    add_log_level_argument,
    non_negative_seconds,
    port_number,
)

if TYPE_CHECKING:
    from controlplane.sources.kubernetes import KubernetesOptions
    from controlplane.xds.server import XdsTlsFiles


@dataclass(frozen=True)
class _Serve:
    name: str = "serve"
    help: str = (
        "Serve Envoy configuration over ADS from YAML files or a Kubernetes cluster, following changes."
    )

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_pipeline_arguments(parser, paths_required=False)
        add_file_limit_arguments(parser)
        cluster = parser.add_argument_group("Kubernetes (instead of PATH)")
        cluster.add_argument(
            "--kubernetes", action="store_true", help="watch a Kubernetes API server and write status there"
        )
        cluster.add_argument(
            "--kubeconfig", type=Path, metavar="PATH", help="default: the Pod's in-cluster credentials"
        )
        cluster.add_argument(
            "--kubeconfig-login-timeout",
            type=non_negative_seconds,
            default=defaults.KUBECONFIG_LOGIN_TIMEOUT_SECONDS,
            metavar="SECONDS",
            help="how long logging the kubeconfig's user in may take at the start (an OIDC refresh, an exec "
            "plugin); 0: no limit, for a login finished in a browser "
            f"(default {defaults.KUBECONFIG_LOGIN_TIMEOUT_SECONDS:g})",
        )
        cluster.add_argument(
            "--namespace",
            action="append",
            default=[],
            metavar="NS",
            help="watch only this namespace (repeat for more; default: all)",
        )
        cluster.add_argument(
            "--leader-election-namespace",
            metavar="NS",
            help="namespace of the Lease that picks the replica writing status (default: the Pod's own)",
        )
        cluster.add_argument(
            "--leader-election-lease-duration",
            type=float,
            default=defaults.LEASE_DURATION_SECONDS,
            metavar="SECONDS",
            help="how long a replica that stopped renewing keeps the Lease before another takes over "
            f"(default {defaults.LEASE_DURATION_SECONDS:g})",
        )
        parser.add_argument(
            "--xds-port",
            type=port_number,
            default=defaults.XDS_PORT,
            metavar="N",
            help=f"the ADS (gRPC) port Envoys and proxy-status connect to (default {defaults.XDS_PORT})",
        )
        parser.add_argument(
            "--admin-port",
            type=port_number,
            default=defaults.ADMIN_PORT,
            metavar="N",
            help="the HTTP port of /metrics (Prometheus), /healthz, /readyz and /status "
            f"(default {defaults.ADMIN_PORT})",
        )
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
        tls = parser.add_argument_group("xDS over TLS (plaintext when not given)")
        tls.add_argument(
            "--xds-tls-cert",
            type=Path,
            metavar="PEM",
            help="the xDS port's certificate (chain); re-read when it changes",
        )
        tls.add_argument(
            "--xds-tls-key", type=Path, metavar="PEM", help="its private key; re-read when it changes"
        )
        tls.add_argument(
            "--xds-client-ca",
            type=Path,
            metavar="PEM",
            help="accept only proxies presenting a certificate signed by this CA (mutual TLS)",
        )
        parser.add_argument(
            "--log-format",
            choices=("console", "json"),
            default="console",
            help="console: readable lines; json: one object per line (default console)",
        )
        add_log_level_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        import asyncio

        from controlplane.log import configure_logging
        from controlplane.serving import PortUnavailable, ServeOptions, serve

        if bool(args.paths) == args.kubernetes:
            raise SystemExit("controlplane serve: give either PATH... or --kubernetes (exactly one)")
        configure_logging(json=args.log_format == "json", level=args.log_level)
        xds_tls = _xds_tls(args)
        options = ServeOptions(
            paths=tuple(args.paths),
            kubernetes=_kubernetes_options(args) if args.kubernetes else None,
            address=args.address,
            xds_port=args.xds_port,
            xds_tls=xds_tls,
            admin_port=args.admin_port,
            translation=pipeline_options(args),
            debounce_seconds=args.debounce,
            file_limits=file_limits(args),
            envoy_drain_seconds=args.envoy_drain_seconds,
        )
        from controlplane.sources.base import SourceUnavailable
        from controlplane.xds.server import TlsFileError

        try:
            asyncio.run(serve(options))
        except (TlsFileError, SourceUnavailable, PortUnavailable) as error:
            raise SystemExit(f"controlplane serve: {error}") from None
        return 0


def _xds_tls(args: argparse.Namespace) -> XdsTlsFiles | None:
    from controlplane.xds.server import XdsTlsFiles

    if args.xds_tls_cert is None and args.xds_tls_key is None:
        if args.xds_client_ca is not None:
            raise SystemExit("controlplane serve: --xds-client-ca needs --xds-tls-cert and --xds-tls-key")
        return None
    if args.xds_tls_cert is None or args.xds_tls_key is None:
        raise SystemExit("controlplane serve: --xds-tls-cert and --xds-tls-key go together")
    return XdsTlsFiles(
        certificate=args.xds_tls_cert, private_key=args.xds_tls_key, client_ca=args.xds_client_ca
    )


def _kubernetes_options(args: argparse.Namespace) -> KubernetesOptions:
    from controlplane.sources.kubernetes import KubernetesOptions, LeaseSettings

    return KubernetesOptions(
        kubeconfig=args.kubeconfig,
        kubeconfig_login_timeout=args.kubeconfig_login_timeout,
        namespaces=tuple(dict.fromkeys(args.namespace)),
        inference_extension=args.enable_inference_extension,
        lease=LeaseSettings.for_duration(
            namespace=args.leader_election_namespace or _own_namespace(),
            lease_duration=args.leader_election_lease_duration,
        ),
    )


def _own_namespace() -> str:
    """The Pod's namespace (from its ServiceAccount mount or ``POD_NAMESPACE``), else ``default``."""
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

COMMAND = _Serve()

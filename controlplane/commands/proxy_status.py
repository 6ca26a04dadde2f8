"""``controlplane proxy-status``: every connected proxy and whether it holds what it is served, per type.

Asks the control plane's ProxyStatusService on its xDS port and prints a table (or JSON), like
``istioctl proxy-status``: one row per proxy, one column per resource type (SYNCED, STALE while a newer
version is on its way, NACKED when the proxy refused it, NOT SENT when it never asked), then the reason
of every refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane import defaults
from controlplane.commands._output import writing_stdout
from controlplane.commands._xds_client_args import (
    XdsClientTlsError,
    add_xds_client_tls_arguments,
    xds_client_tls,
)

if TYPE_CHECKING:
    from controlplane._proto import proxy_status_pb2 as pb
    from controlplane.bootstrap import XdsClientTls

_COLUMNS = (
    ("CDS", "Cluster"),
    ("LDS", "Listener"),
    ("EDS", "ClusterLoadAssignment"),
    ("RDS", "RouteConfiguration"),
    ("SDS", "Secret"),
)
"""Table columns: istioctl's short names, and the type each stands for."""


@dataclass(frozen=True)
class _ProxyStatus:
    name: str = "proxy-status"
    help: str = "Show every proxy connected to the control plane and whether it holds its configuration."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--xds-address",
            default=f"127.0.0.1:{defaults.XDS_PORT}",
            metavar="HOST:PORT",
            help=f"the control plane's xDS port (default 127.0.0.1:{defaults.XDS_PORT})",
        )
        parser.add_argument(
            "-o",
            "--output",
            choices=("table", "json"),
            default="table",
            help="table (default), or json with every field, for scripts",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="how long to wait for the control plane's answer (default 10)",
        )
        add_xds_client_tls_arguments(parser, client="this command")

    def run(self, args: argparse.Namespace) -> int:
        import grpc
        from google.protobuf import json_format

        try:
            tls = xds_client_tls(args)
            reply = _list_proxies(args.xds_address, tls=tls, timeout=args.timeout)
        except (XdsClientTlsError, OSError) as error:
            print(f"controlplane proxy-status: {error}", file=sys.stderr)
            return 2
        except grpc.RpcError as error:
            print(f"controlplane proxy-status: {args.xds_address}: {error.details()}", file=sys.stderr)
            return 1
        if args.output == "json":
            # Every field, empty ones too: a script reading ``.proxies`` or ``.nack_message`` finds it
            # whether or not a proxy is connected or a type was refused.
            document = json_format.MessageToDict(
                reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        else:
            text = render_table(reply)
        with writing_stdout():
            sys.stdout.write(text)
        return 0


def _list_proxies(address: str, *, tls: XdsClientTls | None, timeout: float) -> pb.ListProxiesResponse:
    import grpc

    from controlplane._proto import proxy_status_pb2 as pb
    from controlplane.xds.server.proxy_status import LIST_PROXIES

    options: list[tuple[str, Any]] = []
    if tls is None:
        channel = grpc.insecure_channel(address)
    else:
        key = tls.client_key.read_bytes() if tls.client_key is not None else None
        chain = tls.client_certificate.read_bytes() if tls.client_certificate is not None else None
        credentials = grpc.ssl_channel_credentials(tls.ca.read_bytes(), key, chain)
        if tls.sni is not None:
            options.append(("grpc.ssl_target_name_override", tls.sni))
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        call = channel.unary_unary(
            LIST_PROXIES,
            request_serializer=pb.ListProxiesRequest.SerializeToString,
            response_deserializer=pb.ListProxiesResponse.FromString,
        )
        reply: pb.ListProxiesResponse = call(pb.ListProxiesRequest(), timeout=timeout)
        return reply


def render_table(reply: pb.ListProxiesResponse) -> str:
    """The table ``proxy-status`` prints: a header, one row per proxy, then one line per refusal."""
    from controlplane._proto import proxy_status_pb2 as pb

    header = ["NODE", "CLUSTER", "MODE", *(column for column, _ in _COLUMNS), "GROUP"]
    rows = [header]
    refusals = []
    for proxy in reply.proxies:
        by_type = {status.type_url.rsplit(".", 1)[-1]: status for status in proxy.types}
        cells = [proxy.node_id, proxy.node_cluster, proxy.mode]
        for column, short in _COLUMNS:
            status = by_type[short]
            cells.append(pb.TypeStatus.Sync.Name(status.sync).replace("_", " "))
            if status.nack_message:
                refused = f"{proxy.node_id} {column} refused {status.nacked_version}"
                refusals.append(f"{refused}: {status.nack_message}")
        cells.append(proxy.group or "(default)")
        rows.append(cells)
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([*lines, *refusals]) + "\n"


COMMAND = _ProxyStatus()

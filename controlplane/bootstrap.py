"""Render the Envoy bootstrap that points a proxy at this control plane over ADS.

The template lives in the repository's `envoy/` folder (wheels carry a copy as
`controlplane/_envoy_templates`) so operators can read the exact file Envoy gets; this module only fills
in the few per-deployment values.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from controlplane.defaults import ENVOY_ADMIN_PORT
from controlplane.netutil import split_host_port

DEFAULT_CLUSTER = "ai-gateway"
_TLS_MARKER = "    # xDS over TLS: `controlplane bootstrap --xds-ca` adds a transport_socket here.\n"
_TEMPLATE_NAME = "bootstrap.yaml.tmpl"
_FLUSH_ON_ADMIN_LINE = "stats_flush_on_admin: true\n"
# The bounds Envoy accepts for ``stats_flush_interval``: at least 1 ms, under 300 s.
_STATS_FLUSH_INTERVAL_RANGE = (0.001, 300.0)


def template_dir() -> Path:
    """Folder holding the Envoy templates: the wheel's copy if installed that way, else the repository's."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_envoy_templates", package_dir.parent / "envoy"):
        if (candidate / _TEMPLATE_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"{_TEMPLATE_NAME} not found next to {package_dir}")


@cache
def _template() -> string.Template:
    return string.Template((template_dir() / _TEMPLATE_NAME).read_text(encoding="utf-8"))


def default_node_id() -> str:
    """A node id that is stable for a host: its hostname, or ``envoy`` when there is none."""
    return socket.gethostname() or "envoy"


@dataclass(frozen=True, slots=True, kw_only=True)
class XdsClientTls:
    """How a proxy reaches an xDS port served over TLS: the CA that signed the server's certificate, the
    name to ask for and verify (SNI), and for mutual TLS the proxy's own certificate and key. Paths are
    read by Envoy, so they are paths on the proxy's machine or Pod."""

    ca: Path
    sni: str | None = None
    """Default: the xDS host when it is a name (an address is verified as an IP subjectAltName)."""
    client_certificate: Path | None = None
    client_key: Path | None = None


def render_bootstrap(
    *,
    xds_address: str,
    delta: bool = False,
    node_id: str | None = None,
    cluster: str = DEFAULT_CLUSTER,
    admin_port: int = ENVOY_ADMIN_PORT,
    tls: XdsClientTls | None = None,
    stats_flush_interval: float | None = None,
) -> str:
    """Return the bootstrap YAML for an Envoy fetching its whole config over ADS from `xds_address`
    (over TLS when `tls` is given).

    `admin_port` 0 lets the kernel choose (read it back with Envoy's ``--admin-address-path``).
    Stats are flushed when the admin page is read unless `stats_flush_interval` (seconds) asks for
    Envoy's timer, which stats sinks added to the bootstrap need.
    """
    host, port = split_host_port(xds_address)
    if not 0 <= admin_port < 65536:
        raise ValueError(f"admin port out of range: {admin_port}")
    if not cluster:
        raise ValueError("node cluster must not be empty")
    low, high = _STATS_FLUSH_INTERVAL_RANGE
    if stats_flush_interval is not None and not low <= stats_flush_interval < high:
        raise ValueError(f"stats flush interval must be at least {low} s and under {high:g} s")
    try:
        ipaddress.ip_address(host)
        cluster_type, host_is_name = "STATIC", False
    except ValueError:
        # A name (e.g. a Kubernetes Service) is re-resolved so the proxy follows the control plane's moves.
        cluster_type, host_is_name = "STRICT_DNS", True
    if tls is not None and (tls.client_certificate is None) != (tls.client_key is None):
        raise ValueError("a client certificate and its key go together")
    values = {
        "node_id": node_id or default_node_id(),
        "node_cluster": cluster,
        "admin_port": admin_port,
        "api_type": "DELTA_GRPC" if delta else "GRPC",
        "xds_cluster_type": cluster_type,
        "xds_host": host,
        "xds_port": port,
    }
    # JSON scalars are valid YAML scalars, so quoting this way keeps any node id or host name safe.
    text = _template().substitute({key: json.dumps(value) for key, value in values.items()})
    if stats_flush_interval is not None:
        # Envoy refuses both at once: the timer replaces flushing on admin reads.
        text = text.replace(
            _FLUSH_ON_ADMIN_LINE, f"stats_flush_interval: {_seconds(stats_flush_interval)}s\n", 1
        )
    if tls is None:
        return text
    sni = tls.sni or (host if host_is_name else None)
    return text.replace(_TLS_MARKER, _transport_socket(tls, sni=sni), 1)


def _seconds(value: float) -> str:
    """The fewest digits that read back as `value` (``2.5``, ``5``, ``0.125``), with no exponent in Envoy's
    range: what Go's ``%g`` prints, so the Helm chart renders the same line for the same number."""
    return repr(float(value)).removesuffix(".0")


def _transport_socket(tls: XdsClientTls, *, sni: str | None) -> str:
    """The xDS cluster's TLS block: the server is verified against ``tls.ca`` (and its name when known)."""
    validation: dict[str, object] = {"trusted_ca": {"filename": str(tls.ca)}}
    if sni is not None:
        validation["match_typed_subject_alt_names"] = [{"san_type": "DNS", "matcher": {"exact": sni}}]
    common: dict[str, object] = {"validation_context": validation}
    if tls.client_certificate is not None and tls.client_key is not None:
        common["tls_certificates"] = [
            {
                "certificate_chain": {"filename": str(tls.client_certificate)},
                "private_key": {"filename": str(tls.client_key)},
            }
        ]
    context: dict[str, object] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    }
    if sni is not None:
        context["sni"] = sni
    socket_config = {"name": "envoy.transport_sockets.tls", "typed_config": context}
    # One JSON flow mapping is valid YAML and needs no indentation bookkeeping. Compact and sorted, it is
    # byte for byte what the Helm chart's toJson renders for the same block.
    return f"    transport_socket: {json.dumps(socket_config, sort_keys=True, separators=(',', ':'))}\n"

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
from functools import cache
from pathlib import Path

from controlplane.netutil import split_host_port

DEFAULT_CLUSTER = "ai-gateway"
DEFAULT_ADMIN_PORT = 19000
_TEMPLATE_NAME = "bootstrap.yaml.tmpl"


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


def render_bootstrap(
    *,
    xds_address: str,
    delta: bool = False,
    node_id: str | None = None,
    cluster: str = DEFAULT_CLUSTER,
    admin_port: int = DEFAULT_ADMIN_PORT,
) -> str:
    """Return the bootstrap YAML for an Envoy fetching its whole config over ADS from `xds_address`.

    `admin_port` 0 lets the kernel choose (read it back with Envoy's ``--admin-address-path``).
    """
    host, port = split_host_port(xds_address)
    if not 0 <= admin_port < 65536:
        raise ValueError(f"admin port out of range: {admin_port}")
    if not cluster:
        raise ValueError("node cluster must not be empty")
    try:
        ipaddress.ip_address(host)
        cluster_type = "STATIC"
    except ValueError:
        # A name (e.g. a Kubernetes Service) is re-resolved so the proxy follows the control plane's moves.
        cluster_type = "STRICT_DNS"
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
    return _template().substitute({key: json.dumps(value) for key, value in values.items()})

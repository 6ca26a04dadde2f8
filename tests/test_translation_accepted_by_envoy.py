"""Every translation in the golden files is accepted by a real Envoy: no NACK for any resource type.

The golden tests pin what the translator emits; this proves Envoy takes it, including the cases no
end-to-end test sends traffic through (Services, Pods, TLS with a CA bundle, traffic policies, rejected
objects). The snapshots go over ADS exactly as ``serve`` sends them, with every port moved to a reserved
one.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from controlplane.devtools.stack import map_ports, reserved_port_map
from controlplane.gatewayapi import TranslateOptions
from controlplane.netutil import PortReservations
from controlplane.pipeline import translate
from controlplane.resources.parse import combine, load_text
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from tests.conftest import EnvoyFactory
from tests.polling import wait_until
from tests.xds_support import ServerThread

ROOT = Path(__file__).parent.parent
CASES = [
    *sorted(path for path in (ROOT / "examples").iterdir() if path.is_dir()),
    *sorted((Path(__file__).parent / "testdata" / "translate").glob("*.in.yaml")),
]


@pytest.mark.parametrize("mode", ["sotw"])
def test_envoy_accepts_every_golden_translation(
    xds: ServerThread, envoys: EnvoyFactory, ports: PortReservations
) -> None:
    envoys(node_id="validator")
    for case in CASES:
        snapshot = _snapshot(case, ports)
        xds.cache.set_snapshot(snapshot)
        wait_until(partial(_held, xds, snapshot), message=f"Envoy to hold every resource of {case.name}")
        nacks = xds.events.all(kind="nack")
        assert not nacks, f"Envoy rejected the translation of {case.name}: {nacks[-1].error}"


def _snapshot(case: Path, reservations: PortReservations) -> Snapshot:
    ports = reserved_port_map(case, reservations)
    files = [case] if case.is_file() else sorted(case.glob("*.yaml"))
    loaded = combine(load_text(map_ports(path.read_text(), ports), file=str(path)) for path in files)
    options = TranslateOptions(
        listen_address="127.0.0.1", default_port=ports.get(10080) or 0, inference_extension=True
    )
    return translate(loaded.resource_set(), options=options).snapshot()


def _held(xds: ServerThread, snapshot: Snapshot) -> bool:
    """Envoy ACKed every resource of the snapshot (it may still hold old ones while listeners drain), or
    rejected something, which the caller reports."""
    if xds.events.all(kind="nack"):
        return True
    for type_url in (LISTENER, CLUSTER, ROUTE, ENDPOINT, SECRET):
        acked = xds.events.acked(type_url)
        if any(acked.get(name) != resource.version for name, resource in snapshot.get(type_url).items()):
            return False
    return True

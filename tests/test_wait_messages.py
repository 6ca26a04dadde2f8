"""A wait that times out says what it last saw, so a failure under load is read from the message rather
than re-run: Envoy's ``/ready`` answer, ``controlplane serve``'s ``/readyz`` answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.controlplane_process import ControlPlaneError, ControlPlaneProcess
from controlplane.devtools.envoy_process import EnvoyError, EnvoyProcess
from controlplane.netutil import PortReservations
from tests.kube_support import unreachable_kubeconfig
from tests.polling import wait_until

pytestmark = pytest.mark.envoy


def test_envoy_not_live_in_time_says_what_ready_last_answered(ports: PortReservations) -> None:
    # Nothing listens on the xDS port: Envoy stays INITIALIZING until its initial fetch timeout (15 s).
    bootstrap = render_bootstrap(xds_address=f"127.0.0.1:{ports.reserve()}", admin_port=0, node_id="waiting")
    envoy = EnvoyProcess(bootstrap_yaml=bootstrap).start()
    try:
        envoy.wait_ready(live=False, timeout=60)
        with pytest.raises(EnvoyError, match=r"\(last: /ready answered 503 (PRE_)?INITIALIZING\)"):
            envoy.wait_ready(timeout=1)
    finally:
        envoy.stop()


def test_serve_not_ready_in_time_says_what_readyz_last_answered(
    tmp_path: Path, ports: PortReservations
) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path / "kubeconfig", port=ports.reserve())
    serve = ControlPlaneProcess(
        ["--kubernetes", f"--kubeconfig={kubeconfig}"], log_file=tmp_path / "serve.log"
    )
    try:
        serve.start(wait=False)
        healthz = f"http://127.0.0.1:{serve.admin_port}/healthz"
        wait_until(lambda: httpx.get(healthz, timeout=5).status_code == 200, timeout=60, message="/healthz")
        with pytest.raises(ControlPlaneError, match=r"\(last: /readyz: HTTP Error 503"):
            serve.wait_ready(timeout=1)
    finally:
        serve.stop()

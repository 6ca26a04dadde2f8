"""``/readyz`` of ``serve --kubernetes``, which the Helm chart's readiness probe asks: a replica that has not
read the cluster once is not ready, even after it served a partial first load (the source stops waiting
for slow lists after a while), so a Service sends no Envoy to it; ``/healthz`` answers all along, so the
liveness probe does not restart it. Once the API server answers, it becomes ready. Stopped before it ever
read the cluster, it still exits at once and cleanly.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.kube import LocalKube
from controlplane.netutil import PortReservations
from tests.kube_support import fresh_namespace, serve_arguments, unreachable_kubeconfig
from tests.polling import wait_until


def _answer(process: ControlPlaneProcess, path: str) -> int:
    """The HTTP status of the admin port's ``path`` (0: nothing listens yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.admin_port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return 0


def test_not_ready_until_the_cluster_was_read_once_and_alive_meanwhile(
    private_kube: LocalKube, tmp_path: Path
) -> None:
    with fresh_namespace(private_kube) as namespace:
        private_kube.stop_apiserver()
        process = ControlPlaneProcess(
            serve_arguments(private_kube, namespace), log_file=tmp_path / "serve.log"
        )
        try:
            process.start(wait=False)

            wait_until(lambda: _answer(process, "/healthz") == 200, timeout=30, message="/healthz")
            # The source stops waiting for lists after a while and serves what it has: nothing yet.
            wait_until(
                lambda: process.status()["loads"] >= 1,
                timeout=90,
                interval=0.5,
                message="a partial first load",
            )
            assert _answer(process, "/healthz") == 200
            assert _answer(process, "/readyz") == 503

            private_kube.start_apiserver()
            wait_until(
                lambda: _answer(process, "/readyz") == 200,
                timeout=90,
                interval=0.5,
                message="ready once the API server answers",
            )
        finally:
            process.stop()


@pytest.mark.envoy
def test_sigterm_while_the_api_server_is_unreachable_exits_0(tmp_path: Path, ports: PortReservations) -> None:
    """The wait for the first lists is cancelled with everything else: no thread holds the exit up (it used
    to, until the 30 s wait ended, so a 10 s grace ended in SIGKILL)."""
    kubeconfig = unreachable_kubeconfig(tmp_path / "kubeconfig", port=ports.reserve())
    process = ControlPlaneProcess(
        ["--kubernetes", f"--kubeconfig={kubeconfig}"], log_file=tmp_path / "serve.log"
    )
    try:
        process.start(wait=False)
        wait_until(lambda: _answer(process, "/healthz") == 200, timeout=60, message="/healthz")
        assert _answer(process, "/readyz") == 503
        assert process.terminate(timeout=10) == 0, process.log()[-3000:]
    finally:
        process.stop()

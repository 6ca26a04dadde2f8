"""The Inference Extension's own endpoint picker (``cmd/epp``, built by ``gotools``), run for one pool.

Claims about the endpoint picker protocol are only worth anything against the picker users deploy, so the
tests run the real one: it watches the pool and its Pods in a real API server (``devtools.kube``), scrapes
the model servers' ``/metrics`` on the pool's target port, and serves ext_proc over TLS with a self-signed
certificate, as in a cluster. Its gRPC, health and metrics ports are reserved here until ``stop`` (it
needs numbers up front; Go listens with ``SO_REUSEADDR``, so it binds a reserved port, and a picker killed
and started again gets the same ones); its output goes to a log file the test can read when something
fails.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Self

import grpc
import yaml

from controlplane.devtools.gotools import GoTools
from controlplane.devtools.procutil import StartStop, dying_with_parent, stop_process
from controlplane.netutil import PortReservations
from controlplane.resources.groups import INFERENCE_GROUP

INFERENCE_MODULE = "sigs.k8s.io/gateway-api-inference-extension"
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SERVING = b"\x08\x01"
"""``HealthCheckResponse{status: SERVING}`` on the wire (no health stubs needed for one message)."""


_MANIFESTS = "config/manifests/inferencepool-resources.yaml"
_CONFIG_MAP, _CONFIG_KEY = "plugins-config", "default-plugins.yaml"


class EppError(RuntimeError):
    """The picker exited or did not get ready; the message ends with its log."""


def default_picker_config(tools: GoTools) -> str:
    """The EndpointPickerConfig the Inference Extension's own manifests deploy the picker with (queue,
    KV-cache and prefix-cache scorers), read from the pinned module."""
    manifests = tools.module(INFERENCE_MODULE) / _MANIFESTS
    for document in yaml.safe_load_all(manifests.read_text(encoding="utf-8")):
        if document and document.get("kind") == "ConfigMap" and document["metadata"]["name"] == _CONFIG_MAP:
            config: str = document["data"][_CONFIG_KEY]
            return config
    raise EppError(f"no ConfigMap {_CONFIG_MAP} in {manifests}")


class EppProcess(StartStop):
    """``epp --pool-name NAME --pool-namespace NS`` against the API server of ``kubeconfig``."""

    def __init__(
        self,
        *,
        binary: Path,
        kubeconfig: Path,
        pool_name: str,
        pool_namespace: str,
        log_file: Path,
        config_text: str,
        pool_group: str = INFERENCE_GROUP,
    ) -> None:
        """``config_text`` is its EndpointPickerConfig (scorers and profiles), e.g.
        :func:`default_picker_config`."""
        self._ports = PortReservations()
        self.grpc_port = self._ports.reserve()
        self.health_port = self._ports.reserve()
        self.metrics_port = self._ports.reserve()
        self._args = [
            str(binary),
            f"--pool-name={pool_name}",
            f"--pool-namespace={pool_namespace}",
            f"--pool-group={pool_group}",
            f"--grpc-port={self.grpc_port}",
            f"--grpc-health-port={self.health_port}",
            f"--metrics-port={self.metrics_port}",
            f"--config-text={config_text}",
            "--v=2",
        ]
        self._kubeconfig = kubeconfig
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where Envoy reaches its ext_proc service."""
        return ("127.0.0.1", self.grpc_port)

    def start(self, *, timeout: float = 60.0) -> Self:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_file.open("ab") as log:
            self._process = subprocess.Popen(
                dying_with_parent(self._args),
                env={**os.environ, "KUBECONFIG": str(self._kubeconfig)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float) -> None:
        """Until its health service answers SERVING (it has read the pool from the API server)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with grpc.insecure_channel(f"127.0.0.1:{self.health_port}") as channel:
            check = channel.unary_unary(_HEALTH_CHECK)
            while time.monotonic() < deadline:
                self._check_running()
                try:
                    answer = check(b"", timeout=1)
                    if answer == _SERVING:
                        return
                    last = f"health answered {answer!r}"
                except grpc.RpcError as error:
                    last = f"health check failed: {error.code()}"
                time.sleep(0.2)
        raise EppError(f"epp not ready after {timeout}s (last: {last}):\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self._log_file.read_text(encoding="utf-8", errors="replace") if self._log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the picker gone at once, as when its Pod dies."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ten seconds; the ports are released."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        self._ports.release()

    def _check_running(self) -> None:
        if self._process is None:
            raise EppError("epp is not running")
        if self._process.poll() is not None:
            raise EppError(f"epp exited ({self._process.returncode}):\n{self.log()[-3000:]}")

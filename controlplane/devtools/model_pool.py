"""Model-server Pods for InferencePool tests and benchmarks: fake OpenAI servers that look like a pool's Pods.

A pool's Pods share a target port and differ by IP, so each fake server binds its own loopback address
(127.0.0.11, .12, ...) on one shared port, serves completions and the vLLM load metrics the test sets, and
stands behind a Pod object: written into manifests for the file source, or created through a real API
server with its IP and Ready condition written through the status subresource (there is no kubelet), which
is how both the control plane and the real endpoint picker find it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.kube import LocalKube

FIRST_ADDRESS = "127.0.0.11"
_BIND_TRIES = 20


class ModelPool:
    """``size`` fake model servers named ``<name>-<i>`` on ``first_address`` and the addresses after it."""

    def __init__(self, *, name: str, model: str, size: int, first_address: str = FIRST_ADDRESS) -> None:
        self.name = name
        self._model = model
        self._size = size
        self._first = ipaddress.IPv4Address(first_address)
        self.servers: list[FakeBackend] = []
        self._port = 0

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError(f"model pool {self.name} has no port yet: start it first")
        return self._port

    @property
    def endpoints(self) -> list[str]:
        """``ip:port`` of every server, in index order (what an endpoint picker names)."""
        return [self.endpoint(index) for index in range(len(self.servers))]

    def address(self, index: int) -> str:
        return str(self._first + index)

    def endpoint(self, index: int) -> str:
        return f"{self.address(index)}:{self.port}"

    def pod_name(self, index: int) -> str:
        return f"{self.name}-{index}"

    def start(self) -> Self:
        """Starts every server on one port that is free on all their addresses."""
        for _ in range(_BIND_TRIES):
            try:
                self._start_all()
                return self
            except OSError:
                # The first address's free port was taken on another one: try another port.
                self.stop()
        raise OSError(f"no port free on all {self._size} addresses of model pool {self.name}")

    def add(self) -> FakeBackend:
        """One more server, on the next address and the pool's port."""
        server = FakeBackend(
            name=self.pod_name(len(self.servers)),
            model=self._model,
            host=self.address(len(self.servers)),
            port=self.port,
        )
        server.start()
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def pod(
        self, index: int, *, namespace: str, labels: Mapping[str, str], ready: bool = True
    ) -> dict[str, Any]:
        """The Pod object of server ``index``, status included (for the file source)."""
        return {
            **_pod(self.pod_name(index), namespace, labels),
            "status": _status(self.address(index), ready),
        }

    def create_pods(self, kube: LocalKube, *, namespace: str, labels: Mapping[str, str]) -> None:
        """Creates every server's Pod through the API server and marks it running and ready."""
        for index in range(len(self.servers)):
            self.create_pod(kube, index, namespace=namespace, labels=labels)

    def create_pod(self, kube: LocalKube, index: int, *, namespace: str, labels: Mapping[str, str]) -> None:
        kube.apply(json.dumps(_pod(self.pod_name(index), namespace, labels)))
        self.set_ready(kube, index, namespace=namespace, ready=True)

    def set_ready(self, kube: LocalKube, index: int, *, namespace: str, ready: bool) -> None:
        """Writes the Pod's IP and Ready condition through the status subresource, as a kubelet would."""
        kube.kubectl(
            "patch",
            "pod",
            self.pod_name(index),
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": _status(self.address(index), ready)}),
        )

    def _start_all(self) -> None:
        first = FakeBackend(name=self.pod_name(0), model=self._model, host=self.address(0))
        self.servers.append(first)
        first.start()
        self._port = first.port
        while len(self.servers) < self._size:
            self.add()


def _pod(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        # Never scheduled (no scheduler, no kubelet): the fake server in the test process is the workload.
        "spec": {"containers": [{"name": "model-server", "image": "fake.invalid/model-server"}]},
    }


def _status(ip: str, ready: bool) -> dict[str, Any]:
    state = "True" if ready else "False"
    return {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": state}, {"type": "ContainersReady", "status": state}],
    }

"""The Kubernetes source's watches against a real API server: what they see and what they survive.

Each test runs ``controlplane serve --kubernetes`` as users do and reads what it made of the cluster on
its ``/status`` page (the translation's verdict per object). Tests that restart the API server or compact
etcd get one of their own (``private_kube``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.crds import upstream_crd_files
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.kube import LocalKube
from tests.e2e import EXAMPLES
from tests.kube_support import (
    GATEWAY_CLASS,
    apply_in_namespace,
    fresh_namespace,
    serve_arguments,
    served_conditions,
)
from tests.polling import wait_until

SPLIT = EXAMPLES / "001-weighted-split"


def _route(name: str, namespace: str, backend: str = "qwen-small") -> str:
    return f"""
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: {name}
  namespace: {namespace}
spec:
  parentRefs:
  - name: qwen-gateway
  rules:
  - matches:
    - headers:
      - name: x-route
        value: {name}
    backendRefs:
    - name: {backend}
"""


def _accepted(process: ControlPlaneProcess, namespace: str, name: str) -> bool:
    found = served_conditions(process.status(), "AIGatewayRoute", namespace, name)
    assert found.get("Accepted", {}).get("status") == "True", found
    return True


def _absent(process: ControlPlaneProcess, namespace: str, name: str) -> bool:
    assert served_conditions(process.status(), "AIGatewayRoute", namespace, name) == {}
    return True


@pytest.fixture
def serving(kube: LocalKube, namespace: str, tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    kube.apply(GATEWAY_CLASS)
    apply_in_namespace(kube, SPLIT, namespace)
    with ControlPlaneProcess(serve_arguments(kube, namespace), log_file=tmp_path / "serve.log") as process:
        wait_until(lambda: _accepted(process, namespace, "qwen"), timeout=20)
        yield process


def test_initial_list_then_added_modified_and_deleted_objects(
    kube: LocalKube, namespace: str, serving: ControlPlaneProcess
) -> None:
    kube.apply(_route("second", namespace))
    wait_until(lambda: _accepted(serving, namespace, "second"), timeout=20)

    kube.apply(_route("second", namespace, backend="missing-backend"))

    def unresolved() -> bool:
        found = served_conditions(serving.status(), "AIGatewayRoute", namespace, "second")
        assert found.get("ResolvedRefs", {}).get("status") == "False", found
        assert "missing-backend" in str(found["ResolvedRefs"]["message"])
        return True

    wait_until(unresolved, timeout=20)

    kube.kubectl("delete", "aigatewayroute", "second", "-n", namespace)
    wait_until(lambda: _absent(serving, namespace, "second"), timeout=20)
    _accepted(serving, namespace, "qwen")


def test_a_reference_that_appears_later_makes_the_route_accepted(
    kube: LocalKube, namespace: str, serving: ControlPlaneProcess
) -> None:
    kube.apply(_route("late", namespace, backend="late-backend"))

    def waiting_for_backend() -> bool:
        found = served_conditions(serving.status(), "AIGatewayRoute", namespace, "late")
        assert found.get("ResolvedRefs", {}).get("status") == "False", found
        return True

    wait_until(waiting_for_backend, timeout=20)
    kube.apply(
        f"""
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: late-backend
  namespace: {namespace}
spec:
  schema:
    name: OpenAI
  backendRef:
    name: ollama-small
    kind: Backend
    group: gateway.envoyproxy.io
"""
    )
    wait_until(lambda: _accepted(serving, namespace, "late"), timeout=20)


def test_watch_survives_an_api_server_restart_and_relists_after_etcd_compaction(
    private_kube: LocalKube, tmp_path: Path
) -> None:
    kube = private_kube
    kube.apply(GATEWAY_CLASS)
    with fresh_namespace(kube) as namespace:
        apply_in_namespace(kube, SPLIT, namespace)
        with ControlPlaneProcess(
            serve_arguments(kube, namespace), log_file=tmp_path / "serve.log"
        ) as process:
            wait_until(lambda: _accepted(process, namespace, "qwen"), timeout=20)
            # Frozen, the server misses every event from here on, so its watches fall behind.
            process.pause()
            try:
                kube.apply(_route("while-frozen", namespace))
                kube.kubectl("delete", "aigatewayroute", "qwen", "-n", namespace)
                kube.compact_etcd()
                # A new API server's watch cache starts at the compacted revision: resuming from an older
                # one answers 410 Gone.
                kube.restart_apiserver()
            finally:
                process.resume()
            wait_until(lambda: _accepted(process, namespace, "while-frozen"), timeout=60)
            wait_until(lambda: _absent(process, namespace, "qwen"), timeout=20)
            state = process.status()["source"]["kubernetes"]
            assert state["watchExpirations"] >= 1, state


def test_a_kind_whose_crd_is_missing_is_reported_once_and_watched_once_installed(
    private_kube: LocalKube, kube_tools: GoTools, tmp_path: Path
) -> None:
    kube = private_kube
    crd = "backendtrafficpolicies.gateway.envoyproxy.io"
    kube.kubectl("delete", "crd", crd)
    with fresh_namespace(kube) as namespace:
        log = tmp_path / "serve.log"
        with ControlPlaneProcess(serve_arguments(kube, namespace), log_file=log) as process:

            def reported() -> bool:
                missing = process.status()["source"]["kubernetes"]["notWatched"]
                assert any(scope.startswith("BackendTrafficPolicy/") for scope in missing), missing
                return True

            wait_until(reported, timeout=20)
            # Not retried in a loop: still one report a while later.
            time.sleep(3)
            reports = [
                line
                for line in process.log().splitlines()
                if "cannot watch" in line and "BackendTraffic" in line
            ]
            assert len(reports) == 1, reports

            crd_file = next(path for path in upstream_crd_files(kube_tools) if crd.split(".")[0] in path.name)
            kube.kubectl("apply", "--server-side", "-f", str(crd_file))

            def watched() -> bool:
                missing = process.status()["source"]["kubernetes"]["notWatched"]
                assert not any(scope.startswith("BackendTrafficPolicy/") for scope in missing), missing
                return True

            wait_until(watched, timeout=30)

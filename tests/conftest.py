"""Shared fixtures: an xDS server on a background loop, real Envoys (one per protocol variant), fake backends.

Every process and server here binds port 0 or a port held for it by a ``ports`` reservation (never a number
guessed free), and is stopped in the fixture's teardown whatever the test did.
"""

from __future__ import annotations

import os

# Tests start processes (with a preexec_fn, so by fork) while gRPC servers run on threads of this
# process; gRPC's own fork handlers then run in the child and can abort it before it execs. Read by
# grpc when it is first imported, which is below.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.netutil import PortReservations
from controlplane.xds.server import XdsSettings
from tests.xds_support import SERVER_DRAIN_SECONDS, ServerThread, start_envoy

# Re-exported: test modules annotate the factory fixtures with these.
from tests.xds_support import BackendFactory as BackendFactory
from tests.xds_support import EnvoyFactory as EnvoyFactory

# The real API server fixtures (``kube``, ``namespace``, ``private_kube``).
pytest_plugins = ["tests.kube_support"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden files under tests/testdata from the current output (then review the diff)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--update-golden"):
        os.environ["UPDATE_GOLDEN"] = "1"


PROCESS_FIXTURES = frozenset({"envoys", "kube", "kube_tools", "namespace", "private_kube"})
"""Fixtures that start processes: a test using one is marked ``envoy`` without saying so."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.envoy)


@contextmanager
def _processes_refused(item: pytest.Item) -> Iterator[None]:
    """Keeps ``pytest -m "not envoy"`` fast and honest: a test not marked ``envoy`` fails if it (or a
    fixture it sets up, whatever its scope) starts a process."""
    if item.get_closest_marker("envoy") is not None:
        yield
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{item.nodeid} starts a process: mark it @pytest.mark.envoy")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", refuse)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        return (yield)


@pytest.fixture(params=["sotw", "delta"])
def mode(request: pytest.FixtureRequest) -> str:
    """The ADS variant under test: state of the world or incremental."""
    value: str = request.param
    return value


@pytest.fixture
def ports() -> Iterator[PortReservations]:
    """Ports for the test's Envoy listeners and children: ``ports.reserve()``, held until teardown."""
    with PortReservations() as reservations:
        yield reservations


@pytest.fixture
def xds_settings() -> XdsSettings:
    """Override in a test module for other server settings."""
    return XdsSettings(debounce_seconds=0.02, listener_drain_seconds=SERVER_DRAIN_SECONDS)


@pytest.fixture
def xds(xds_settings: XdsSettings) -> Iterator[ServerThread]:
    """A running xDS server (and admin server) with an empty cache."""
    server = ServerThread(xds_settings)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def envoys(xds: ServerThread, mode: str) -> Iterator[EnvoyFactory]:
    """Start Envoys connected to `xds` in the test's mode: ``envoys(node_id="n1", cluster="c")``."""
    # Every one is stopped at teardown, even if stopping another raised first.
    with ExitStack() as started:

        def start(node_id: str = "envoy-1", cluster: str = "ai-gateway") -> EnvoyProcess:
            envoy = start_envoy(xds_port=xds.port, mode=mode, node_id=node_id, cluster=cluster)
            started.callback(envoy.stop)
            return envoy

        yield start


@pytest.fixture
def backends() -> Iterator[BackendFactory]:
    """Start fake OpenAI backends by name; all are stopped at teardown, whatever stopping one raised."""
    with ExitStack() as started:

        def start(name: str) -> FakeBackend:
            return started.enter_context(FakeBackend(name=name, model=f"model-{name}"))

        yield start

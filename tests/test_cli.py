"""What ``controlplane --help`` and a user's mistakes show: every flag explained, a bad flag or port named in
one line instead of a traceback, and nothing left listening after a failed start (a kubeconfig that cannot be
used: test_cli_kubeconfig.py)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from controlplane.admin import AdminServer
from controlplane.cli import build_parser, main
from controlplane.commands import bootstrap
from controlplane.commands._pipeline_args import pipeline_options
from controlplane.crdgen import render
from controlplane.devtools.fake_backend.__main__ import main as fake_backend_main
from controlplane.netutil import ReservedPort
from controlplane.serving import PortUnavailable, ServeOptions, _listen
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.server import XdsServer


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = [
        action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    ]
    return dict(subparsers.choices)


def test_every_flag_of_every_subcommand_says_what_it_does() -> None:
    unexplained = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _subcommand_parsers().items()
        for action in parser._actions
        if not action.help
    ]
    assert unexplained == []


def test_an_unknown_log_level_is_a_usage_error_naming_the_levels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "examples", "--log-level", "verbose"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--log-level" in error
    assert all(level in error for level in ("debug", "info", "warning", "error"))


@pytest.mark.parametrize(
    ("given", "level"), [("WARNING", "warning"), ("warn", "warning"), ("Critical", "critical")]
)
def test_a_log_level_is_taken_in_any_case_and_warn_means_warning(given: str, level: str) -> None:
    args = build_parser().parse_args(["serve", "examples", "--log-level", given])
    assert args.log_level == level


_ARGUMENTS_REQUIRED = {"bootstrap": ["--xds-address=127.0.0.1:18000"], "translate": ["examples"]}


def _port_flags() -> list[tuple[str, str]]:
    return sorted(
        (name, option)
        for name, parser in _subcommand_parsers().items()
        for action in parser._actions
        for option in action.option_strings
        if option.endswith("-port")
    )


def test_the_port_flags_checked_below_are_all_there_are() -> None:
    assert _port_flags() == [
        ("bootstrap", "--admin-port"),
        ("serve", "--admin-port"),
        ("serve", "--listener-port"),
        ("serve", "--xds-port"),
        ("translate", "--listener-port"),
    ]


_LOWEST_PORT = {"--listener-port": 1}
"""An Envoy listener's port is one of Gateway API's 1 to 65535; the ports we listen on take 0 too (the OS
chooses)."""


@pytest.mark.parametrize(("command", "flag"), _port_flags())
@pytest.mark.parametrize("value", ["70000", "65536", "below", "-5", "http"])
def test_a_port_outside_its_range_is_a_usage_error(
    command: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lowest = _LOWEST_PORT.get(flag, 0)
    value = str(lowest - 1) if value == "below" else value
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, *_ARGUMENTS_REQUIRED.get(command, []), f"{flag}={value}"])
    assert exited.value.code == 2
    assert f"argument {flag}: '{value}' is not a port number ({lowest} to 65535)" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "flag"), _port_flags())
@pytest.mark.parametrize("end", ["lowest", "highest"])
def test_the_ports_of_its_range_are_taken(command: str, flag: str, end: str) -> None:
    value = _LOWEST_PORT.get(flag, 0) if end == "lowest" else 65535
    args = build_parser().parse_args([command, *_ARGUMENTS_REQUIRED.get(command, []), f"{flag}={value}"])
    assert getattr(args, flag.removeprefix("--").replace("-", "_")) == value


@pytest.mark.parametrize(("given", "port"), [([], 10080), (["--listener-port=1"], 1)])
def test_the_listener_port_given_is_the_one_translated(given: list[str], port: int) -> None:
    args = build_parser().parse_args(["translate", "examples", *given])
    assert pipeline_options(args).default_port == port


@pytest.mark.parametrize("flag", ["--port=70000", "--log-level=verbose"])
def test_the_fake_backend_checks_its_port_and_log_level_as_the_commands_do(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        fake_backend_main(["--name=a", "--model=m", flag])
    assert exited.value.code == 2
    assert f"argument {flag.split('=')[0]}: " in capsys.readouterr().err


def test_an_admin_port_that_cannot_be_bound_in_any_way_leaves_no_socket_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = AdminServer(registry=XdsServer(cache=SnapshotCache()).metrics, ready=lambda: True)
    # The sockets this thread makes, held here: neither the collector nor their last reference going can close
    # one unseen, and other threads' sockets do not count.
    made: list[socket.socket] = []
    here, initialise = threading.current_thread(), socket.socket.__init__

    def recording(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        initialise(self, *args, **kwargs)
        if threading.current_thread() is here:
            made.append(self)

    monkeypatch.setattr(socket.socket, "__init__", recording)
    with pytest.raises(OverflowError):  # the socket module's own check, which is no OSError
        asyncio.run(admin.start(host="127.0.0.1", port=70000))
    monkeypatch.undo()
    assert made
    assert [made_socket for made_socket in made if made_socket.fileno() != -1] == []


async def _listen_outcome(*, options: ServeOptions, xds_started: bool = False) -> tuple[BaseException, bool]:
    """What ``_listen`` raised, and whether the xDS server is still serving after it."""
    server = XdsServer(cache=SnapshotCache())
    admin = AdminServer(registry=server.metrics, ready=lambda: True)
    if xds_started:
        await server.start(host="127.0.0.1", port=0)
    try:
        await _listen(server=server, admin=admin, options=options)
    except Exception as error:  # whatever it is: the tests look at it
        return error, server.serving
    finally:
        await admin.stop()
        await server.stop(grace_seconds=0)
    raise AssertionError("_listen started")


def test_whatever_the_admin_port_raises_the_xds_server_is_stopped_first() -> None:
    options = ServeOptions(address="127.0.0.1", xds_port=0, admin_port=70000)
    error, serving = asyncio.run(_listen_outcome(options=options))
    assert isinstance(error, OverflowError)
    assert not serving


def test_an_xds_address_not_of_this_host_is_named_with_the_systems_reason() -> None:
    options = ServeOptions(address="192.0.2.1", xds_port=0, admin_port=0)  # TEST-NET-1: no host's
    error, _ = asyncio.run(_listen_outcome(options=options))
    assert isinstance(error, PortUnavailable)
    assert str(error) == "--xds-port 0: cannot listen on 192.0.2.1:0: Cannot assign requested address"


def test_an_xds_server_started_twice_is_a_bug_not_a_port_unavailable() -> None:
    options = ServeOptions(address="127.0.0.1", xds_port=0, admin_port=0)
    error, _ = asyncio.run(_listen_outcome(options=options, xds_started=True))
    assert not isinstance(error, PortUnavailable)
    assert str(error) == "the xDS server is already started"


def _bind_once_released(reserved: ReservedPort) -> None:
    """Binds the port as a plain program would, the test's reservation let go: refused while the server
    still listens. (Held until then, the port was nobody else's to take: the server binds it through the
    reservation, which never listens.)"""
    reserved.release()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", reserved.port))


@pytest.mark.parametrize(
    ("steps", "again"), [*((steps, None) for steps in range(6)), (1, 1), (3, 1), (4, 1), (4, 3)]
)
def test_an_xds_start_cut_short_leaves_its_port_free_at_once(steps: int, again: int | None) -> None:
    """Cancelled (the process told to stop) once the port is bound, at each point of grpc's start (on a
    loaded machine a cancel one step in used to leave the port held); and cancelled again `again` steps
    later, while the start is let finish or the server stopped."""

    async def cut_short(reserved: ReservedPort) -> None:
        start = asyncio.ensure_future(
            XdsServer(cache=SnapshotCache()).start(host="127.0.0.1", port=reserved.port)
        )
        for _ in range(steps):
            await asyncio.sleep(0)
        start.cancel()
        if again is not None:
            for _ in range(again):
                await asyncio.sleep(0)
            start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        _bind_once_released(reserved)

    with ReservedPort() as reserved:
        asyncio.run(cut_short(reserved))


class _HeldServer:
    """A grpc server whose start and stop each wait for the test's word first (the stop saying it was
    reached)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.go_start, self.go_stop, self.stop_reached = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._server, name)

    async def start(self) -> None:
        await self.go_start.wait()
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        self.stop_reached.set()
        await self.go_stop.wait()
        await self._server.stop(grace)


@pytest.mark.parametrize("again_during", ["start", "stop"])
def test_an_xds_start_cancelled_again_while_it_cleans_up_still_frees_its_port(
    again_during: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled during grpc's start, then again while the start is let finish or while the server is
    stopped: each held until the second cancel has landed."""
    made: list[_HeldServer] = []
    server = grpc.aio.server

    def held_server(**options: Any) -> _HeldServer:
        made.append(_HeldServer(server(**options)))
        return made[-1]

    monkeypatch.setattr(grpc.aio, "server", held_server)

    async def cancelled_twice(reserved: ReservedPort) -> None:
        start = asyncio.ensure_future(
            XdsServer(cache=SnapshotCache()).start(host="127.0.0.1", port=reserved.port)
        )
        await asyncio.sleep(0)  # the start makes its server, binds the port and starts it
        (held,) = made
        start.cancel()
        if again_during == "start":
            await asyncio.sleep(0)  # the cancel lands; the cleanup waits for the start
        else:
            held.go_start.set()
            await held.stop_reached.wait()
        start.cancel()
        await asyncio.sleep(0)
        held.go_start.set()
        held.go_stop.set()
        with pytest.raises(asyncio.CancelledError):
            await start
        _bind_once_released(reserved)

    with ReservedPort() as reserved:
        asyncio.run(cancelled_twice(reserved))


def _raise_a_broken_pipe(*_arguments: object, **_keywords: object) -> str:
    raise BrokenPipeError("a socket, say")


@pytest.mark.parametrize(
    ("module", "writer", "argv"),
    [
        (bootstrap, "render_bootstrap", ["bootstrap", "--xds-address=127.0.0.1:18000"]),
        (render, "write", ["crds", "--output=OUTPUT"]),
    ],
)
def test_a_broken_pipe_not_on_stdout_is_not_taken_for_a_reader_that_left(
    module: object, writer: str, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, writer, _raise_a_broken_pipe)
    with pytest.raises(BrokenPipeError, match="a socket, say"):
        main([argument.replace("OUTPUT", str(tmp_path)) for argument in argv])


@pytest.mark.envoy
def test_a_reader_that_stops_early_gets_no_traceback_and_every_problem(tmp_path: Path) -> None:
    """``controlplane translate examples | head``: the pipe closes long before the document ends; the
    problems, on stderr, are still told."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\n"
        "metadata: {name: broken, namespace: default}\nspec: 3\n"
    )
    translate = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlplane",
            "translate",
            "examples",
            str(broken),
            "--enable-inference-extension",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert translate.stdout is not None
    assert translate.stderr is not None
    assert translate.stdout.read(100)
    translate.stdout.close()
    errors = translate.stderr.read().decode()
    assert translate.wait(timeout=60) == 1
    assert "Traceback" not in errors, errors
    assert f"{broken}:0: AIServiceBackend/default/broken: spec: must be a mapping" in errors.splitlines()


@pytest.mark.envoy
@pytest.mark.parametrize("flag", ["--xds-port", "--admin-port"])
def test_serve_on_a_port_another_process_holds_exits_1_naming_the_flag(flag: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        ports = {"--xds-port": 0, "--admin-port": 0, flag: held}
        done = subprocess.run(
            [sys.executable, "-m", "controlplane", "serve", "examples", "--address=127.0.0.1"]
            + [f"{name}={port}" for name, port in ports.items()],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).parent.parent,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"controlplane serve: {flag} {held}: cannot listen on 127.0.0.1:{held}: Address already in use"
    )

"""What ``controlplane --help`` and a user's mistakes show: every flag explained, a bad flag or kubeconfig
named in one line instead of a traceback."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.cli import build_parser, main
from controlplane.sources.base import SourceUnavailable
from controlplane.sources.kubernetes.api import KubeApi


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


def test_a_log_level_is_taken_in_any_case() -> None:
    args = build_parser().parse_args(["serve", "examples", "--log-level", "WARNING"])
    assert args.log_level == "warning"


_UNUSABLE_KUBECONFIGS = {
    "missing": None,
    "not YAML": "clusters: [\n",
    "no current context": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n",
}


@pytest.mark.parametrize("case", sorted(_UNUSABLE_KUBECONFIGS))
def test_a_kubeconfig_that_cannot_be_used_is_named_with_why(tmp_path: Path, case: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    text = _UNUSABLE_KUBECONFIGS[case]
    if text is not None:
        kubeconfig.write_text(text)
    with pytest.raises(SourceUnavailable, match=f"^--kubeconfig {re.escape(str(kubeconfig))}: .+"):
        KubeApi.connect(kubeconfig=kubeconfig)


def test_outside_a_pod_without_a_kubeconfig_the_in_cluster_credentials_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SourceUnavailable, match=r"^in-cluster credentials: .+"):
        KubeApi.connect()


@pytest.mark.envoy
def test_serve_with_an_unusable_kubeconfig_exits_1_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    command = ["serve", "--kubernetes", f"--kubeconfig={missing}", "--xds-port=0", "--admin-port=0"]
    done = subprocess.run(
        [sys.executable, "-m", "controlplane", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"controlplane serve: --kubeconfig {missing}: "), line


@pytest.mark.envoy
def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """``controlplane translate examples | head``: the pipe closes long before the document ends."""
    translate = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "translate", "examples", "--enable-inference-extension"],
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
    assert done.stderr.splitlines()[-1].startswith(f"controlplane serve: {flag} {held}: cannot listen on")

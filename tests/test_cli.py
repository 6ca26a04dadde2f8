"""What ``controlplane --help`` and bad flags show a user: every flag explained, mistakes as usage errors."""

from __future__ import annotations

import argparse

import pytest

from controlplane.cli import build_parser, main


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

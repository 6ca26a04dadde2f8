"""Argument types shared by every command (and dev tool) taking a port, a log level or seconds, so one value
is checked the same way, as a usage error, whichever flag takes it.

A plain ``type=int`` port let ``70000`` through: Python's socket refuses it with ``OverflowError`` (not the
``OSError`` a bind failure is), and gRPC silently wraps it modulo 65536.
"""

from __future__ import annotations

import argparse
import threading

from controlplane import defaults

_HIGHEST_PORT = 65535
_LOG_LEVEL_ALIASES = {"warn": "warning"}
"""Names Python's logging also takes, accepted for the level they stand for."""


def port_number(text: str) -> int:
    """A TCP port to listen on: 0 (where the flag lets the OS choose) to 65535."""
    return _port_from(text, lowest=0)


def listener_port_number(text: str) -> int:
    """A port of an Envoy listener: 1 to 65535, Gateway API's range for a listener's port (Envoy has no OS
    to choose for it: 0 would be a listener no one can reach)."""
    return _port_from(text, lowest=1)


def _port_from(text: str, *, lowest: int) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not lowest <= port <= _HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number ({lowest} to {_HIGHEST_PORT})")
    return port


def non_negative_seconds(text: str) -> float:
    """A time to wait, in seconds: 0 (a flag's "no limit") to ``threading.TIMEOUT_MAX`` (about 292 years),
    beyond which a thread's wait raises ``OverflowError`` rather than waiting."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= threading.TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (0 to {threading.TIMEOUT_MAX:.0f})"
        )
    return seconds


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-level``: one of ``defaults.LOG_LEVELS`` in any case, ``warn`` meaning ``warning``; an
    unknown level is a usage error naming the levels, not a traceback."""
    parser.add_argument(
        "--log-level",
        type=_log_level,
        choices=defaults.LOG_LEVELS,
        default=defaults.LOG_LEVEL,
        help="the least severe messages logged, in any case; warn means warning "
        f"(default {defaults.LOG_LEVEL})",
    )


def _log_level(text: str) -> str:
    level = text.lower()
    return _LOG_LEVEL_ALIASES.get(level, level)

"""Why a kubeconfig (or the in-cluster credentials) could not be used, told without the file's values.

``serve --kubernetes`` exits with this reason on stderr, which is the Pod's log; the kubeconfig holds tokens,
client keys, passwords and proxy credentials, and the kubernetes client, PyYAML, urllib3 and oauthlib quote
whatever they were handed. So this is an allowlist: a reason keeps text only where it is known to carry none
of the file's values (after cutting what could); any other error is told by its type alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes.config
import yaml

LOADER_VALUE_ERRORS = (ValueError, TypeError, AttributeError, LookupError)
"""What the loader (or YAML's own ``!!int``) raises on a value of the wrong type or form; their text quotes
the value (``invalid literal for int() with base 10: 'the token'``)."""

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
"""A quoted fragment as ``repr`` writes it: PyYAML quotes tag, alias and anchor names and single characters
of the file this way (``found undefined alias 'the password'``)."""

_MISSING_FILE = "File does not exist: "
"""How the kubernetes loader starts the message on a file named in the kubeconfig that is not there."""

_NAMED_FILE = "a file it names (tokenFile, certificate-authority, client-certificate, client-key, command)"
"""Such a file's path is built from a value in the kubeconfig (a token or a base64 key given as a file name
by mistake), so it is never quoted."""


def told_reason(error: Exception, *, kubeconfig: Path | None) -> str:
    """Why loading ``kubeconfig`` (None: the in-cluster credentials) failed, in one line."""
    if isinstance(error, yaml.MarkedYAMLError):
        return _yaml_reason(error)
    if isinstance(error, yaml.reader.ReaderError):
        # Its character is one of the file's (a token's, say), so only the reason and where are told.
        return f"unacceptable character: {error.reason} at position {error.position}"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return _file_reason(error, kubeconfig=kubeconfig)
    if isinstance(error, kubernetes.config.ConfigException):
        return _config_reason(error)
    if isinstance(error, ImportError) and error.name:
        # A socks5:// proxy-url needs PySocks, which urllib3 imports only then; the module name is urllib3's.
        return f"it needs the Python module {error.name}, which is not installed"
    kind = _kind(error)
    if isinstance(error, LOADER_VALUE_ERRORS):
        return f"a value in it is of the wrong type or form ({kind}; its text is left out)"
    return f"it could not be used ({kind}; its text is left out)"


def _yaml_reason(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's context and problem with their quoted fragments cut, and where each is (line and column)."""
    parts: list[str] = []
    if error.context:
        parts.append(_unquoted(error.context))
        if error.context_mark is not None and (
            error.problem_mark is None
            or (error.context_mark.line, error.context_mark.column)
            != (error.problem_mark.line, error.problem_mark.column)
        ):
            parts.append(_where(error.context_mark))
    if error.problem:
        parts.append(_unquoted(error.problem))
    if error.problem_mark is not None:
        parts.append(_where(error.problem_mark))
    if error.note:
        parts.append(_unquoted(error.note))
    return " ".join(" ".join(parts).split()) or f"it is no valid YAML ({_kind(error)})"


def _where(mark: yaml.Mark) -> str:
    # The mark's own text adds the file's name (already told) and, read from a string, a snippet of the line.
    return f"at line {mark.line + 1}, column {mark.column + 1}"


def _file_reason(error: OSError, *, kubeconfig: Path | None) -> str:
    if kubeconfig is None:
        # The in-cluster credentials are files at fixed paths: their names tell nothing secret.
        return f"{error.strerror}: {error.filename}"
    if str(error.filename) == str(kubeconfig):
        return str(error.strerror)  # its path is told before the reason
    return f"{_NAMED_FILE} cannot be read: {error.strerror}"


def _config_reason(error: kubernetes.config.ConfigException) -> str:
    """The loader's message, first line only (a ``cmd-path`` failure lists the command and its arguments, then
    its stderr, from the second line on), with no ``{...}`` (it names a malformed entry by its whole content:
    ``Expected key user in PATH/{'name': 'u', 'token': ...}``) and no quoted fragment. Names (of a context, a
    cluster or a user) stay: they say which entry is wrong."""
    text = (str(error).splitlines() or [""])[0]
    if text.startswith(_MISSING_FILE):
        return f"{_NAMED_FILE} cannot be read: it does not exist"
    opening, closing = text.find("{"), text.rfind("}")
    if opening != -1 and closing > opening:
        text = f"{text[:opening]}{{...}}{text[closing + 1 :]}"
    return _unquoted(text)


def _unquoted(text: str) -> str:
    return _QUOTED.sub("'...'", text)


def _kind(error: Exception) -> str:
    kind = type(error).__qualname__  # binascii.Error, a bad base64 client key, is named with its module
    return kind if type(error).__module__ == "builtins" else f"{type(error).__module__}.{kind}"

"""Log set-up: a logged traceback names the failure but shows no frame's local values (a local may hold a
key), in either form, whichever exception formatter structlog would pick by default; what the kubernetes
client's kubeconfig loader logs (a failing exec plugin, with the kubeconfig's users entry) is a fixed text; an
OIDC id-token refresh logs no secret, even at debug level, nor the issuer's URL."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import ssl
import threading
import traceback
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TextIO
from unittest.mock import ANY

import pytest
import structlog
import urllib3

from controlplane.devtools.certs import generate_dev_certs
from controlplane.log import (
    KUBECONFIG_LOADER_TEXT,
    KUBECONFIG_LOGIN_REQUEST_TEXT,
    OAUTH2_CLIENT_LOGGERS,
    KubeconfigLoaderFilter,
    configure_logging,
)
from controlplane.sources.base import SourceUnavailable
from controlplane.sources.kubernetes.api import KubeApi
from tests.test_cli_kubeconfig import (
    CLUSTER,
    EXPIRED_ID_TOKEN,
    FAILING_EXEC_USER,
    KUBECONFIG_HEAD,
    SECRET,
)
from tests.token_endpoints import OIDC_CLIENT_ID, OIDC_SECRET, TOKEN_MARK, TokenEndpoints

MARKER = "sk-local-3e91b7"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, filters, level = root.handlers[:], root.filters[:], root.level
    held = {name: logging.getLogger(name).level for name in OAUTH2_CLIENT_LOGGERS}
    yield
    logging.captureWarnings(False)
    root.handlers, root.filters, root.level = handlers, filters, level
    for name, held_level in held.items():
        logging.getLogger(name).setLevel(held_level)
    structlog.reset_defaults()


def _locals_formatter(
    stream: TextIO, exc_info: tuple[type[BaseException], BaseException, TracebackType | None]
) -> None:
    """What structlog's default is when rich is installed: each frame printed with its locals."""
    for frame, _ in traceback.walk_tb(exc_info[2]):
        stream.write(f"\n{frame.f_code.co_name} locals: {frame.f_locals!r}")
    stream.write(f"\n{exc_info[0].__name__}: {exc_info[1]}")


def _refuse() -> None:
    client_secret = MARKER
    raise ValueError(f"refused ({len(client_secret)} characters)")


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("json", [False, True], ids=["console", "json"])
def test_a_traceback_shows_no_local_values(
    json: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(structlog.dev, "default_monochrome_exception_formatter", _locals_formatter)
    configure_logging(json=json, level="info")
    try:
        _refuse()
    except ValueError:
        structlog.get_logger("test").exception("minting failed")
    logged = capsys.readouterr().err
    assert "minting failed" in logged
    assert "ValueError: refused (15 characters)" in logged
    assert "_refuse" in logged
    assert MARKER not in logged


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("failing", ["an env entry without a name", "a plugin that fails"])
def test_what_the_loader_logs_of_a_failing_exec_plugin_is_a_fixed_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, failing: str
) -> None:
    """Through our handler (stderr) and any other on the root logger: the plugin runs again at every token
    refresh, in the watch threads, so its records would reach the Pod's log all along."""
    user = FAILING_EXEC_USER
    if failing == "a plugin that fails":
        user = user.replace(f"      env: [{{value: {SECRET}-env}}]\n", "")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"{KUBECONFIG_HEAD}{CLUSTER}{user}")
    configure_logging(json=True, level="info")
    logging.getLogger().addHandler(caplog.handler)  # configure_logging replaced the root logger's handlers
    KubeApi.connect(kubeconfig=kubeconfig).close()
    stderr = capsys.readouterr().err
    assert KUBECONFIG_LOADER_TEXT in stderr
    assert [record.getMessage() for record in caplog.records] == [KUBECONFIG_LOADER_TEXT]
    assert SECRET not in stderr + caplog.text


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("json", [False, True], ids=["console", "json"])
def test_an_oidc_id_token_refresh_at_debug_level_logs_no_secret(
    tmp_path: Path, json: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The client refreshes an expired id-token through requests_oauthlib, whose debug records quote the
    client secret, the refresh token and the issuer's answer (its tokens)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake issuer speaks plain HTTP
    refresh_token = f"{SECRET}-refresh-token"
    kubeconfig = tmp_path / "kubeconfig"
    with TokenEndpoints().running() as issuer:
        kubeconfig.write_text(
            f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n"
            f"      config: {{id-token: {EXPIRED_ID_TOKEN}, idp-issuer-url: '{issuer.url}',"
            f" client-id: {OIDC_CLIENT_ID}, client-secret: {OIDC_SECRET}, refresh-token: {refresh_token}}}\n"
        )
        configure_logging(json=json, level="debug")
        with pytest.raises(SourceUnavailable):  # the fake's answer has no id_token
            KubeApi.connect(kubeconfig=kubeconfig)
    assert [where for where, _ in issuer.received] == ["oidc discovery", "oidc"]
    assert issuer.issued("oidc") == [f"oidc{TOKEN_MARK}1"]
    stderr = capsys.readouterr().err
    assert KUBECONFIG_LOGIN_REQUEST_TEXT in stderr  # debug records were logged (urllib3's, rewritten)
    for secret in (OIDC_SECRET, refresh_token, TOKEN_MARK):
        assert secret not in stderr


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("level", ["info", "debug"])
def test_urllib3_s_records_of_a_refresh_at_an_unreachable_issuer_do_not_quote_its_url(
    tmp_path: Path, level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """urllib3 warns at each retry, quoting the URL's path: a value of the kubeconfig, like the others."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n"
        f"      config: {{id-token: {EXPIRED_ID_TOKEN}, idp-issuer-url: 'http://127.0.0.1:1/{SECRET}',"
        " client-id: c, client-secret: c, refresh-token: r}\n"
    )
    configure_logging(json=True, level=level)
    with pytest.raises(SourceUnavailable):  # nothing listens on port 1
        KubeApi.connect(kubeconfig=kubeconfig)
    stderr = capsys.readouterr().err
    logged = [json.loads(line) for line in stderr.splitlines()]
    retries = [
        entry
        for entry in logged
        if (entry["logger"], entry["level"]) == ("urllib3.connectionpool", "warning")
    ]
    assert retries
    assert all(entry["event"] == KUBECONFIG_LOGIN_REQUEST_TEXT for entry in retries)
    assert SECRET not in stderr


class _NoDiscovery(BaseHTTPRequestHandler):
    """An issuer with no discovery document: the loader keeps the id-token it has, and the load goes on."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test's output is the log."""


@contextlib.contextmanager
def _https_server(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server answering 404 at 127.0.0.1 on the port yielded, its certificate of no known CA."""
    certs = generate_dev_certs(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoDiscovery)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serving = threading.Thread(target=server.serve_forever, name="fake-issuer", daemon=True)
    serving.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)


@pytest.mark.usefixtures("restored_logging")
def test_urllib3_s_warning_of_an_unverified_issuer_is_a_log_line_naming_no_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loader does not verify an HTTPS issuer given no CA; urllib3 warns so through Python's warnings,
    naming the host (here the address; a name from the kubeconfig in life), which printed it past the log."""
    kubeconfig = tmp_path / "kubeconfig"
    with _https_server(tmp_path) as port:
        kubeconfig.write_text(
            f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n"
            f"      config: {{id-token: {EXPIRED_ID_TOKEN}, client-id: c, client-secret: c, refresh-token: r,"
            f" idp-issuer-url: 'https://127.0.0.1:{port}'}}\n"
        )
        configure_logging(json=True, level="info")
        KubeApi.connect(kubeconfig=kubeconfig).close()
    stderr = capsys.readouterr().err
    logged = [json.loads(line) for line in stderr.splitlines()]
    assert [entry for entry in logged if entry["logger"] == "py.warnings"] == [
        {
            "event": KUBECONFIG_LOGIN_REQUEST_TEXT,
            "level": "warning",
            "logger": "py.warnings",
            "timestamp": ANY,
        }
    ]
    assert "127.0.0.1" not in stderr


def _record(*, pathname: str, message: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("root", logging.ERROR, pathname, 1, message, (), None)
    record.__dict__.update(extra)
    return record


@pytest.mark.usefixtures("restored_logging")
def test_only_the_installed_loaders_records_are_rewritten(capsys: pytest.CaptureFixture[str]) -> None:
    """A project or venv under some other ``kubernetes/config`` folder logs as it would anywhere; so does
    structlog (its message is the event dict its formatter reads), wherever the call is made from."""
    configure_logging(json=True, level="info")
    loader_filter = KubeconfigLoaderFilter()
    loader = importlib.util.find_spec("kubernetes.config.kube_config")
    assert loader is not None
    assert loader.origin is not None
    elsewhere = f"{os.sep}srv{os.sep}kubernetes{os.sep}config{os.sep}app.py"

    theirs = _record(pathname=loader.origin, message=f"exec: {MARKER}")
    assert loader_filter.filter(theirs)
    assert theirs.getMessage() == KUBECONFIG_LOADER_TEXT
    ours = _record(pathname=elsewhere, message="kept as written")
    assert loader_filter.filter(ours)
    assert ours.getMessage() == "kept as written"

    structlog_logger = logging.getLogger("tests.structlog")
    record = structlog_logger.makeRecord(
        "tests.structlog",
        logging.INFO,
        loader.origin,
        1,
        {"event": "structlog event"},
        (),
        None,
        extra={"_logger": structlog_logger, "_name": "info"},
    )
    logging.getLogger().handle(record)
    assert '"event": "structlog event"' in capsys.readouterr().err


@pytest.mark.usefixtures("restored_logging")
def test_python_warnings_are_logged_after_showwarning_was_put_back_between_two_configurations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ``warnings.catch_warnings`` block (pytest runs each test in one) puts ``warnings.showwarning`` back
    on leaving, while logging keeps the one it saved: configuring again must capture warnings again."""
    with warnings.catch_warnings():
        configure_logging(json=True, level="info")
    configure_logging(json=True, level="info")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a warning after two configurations", UserWarning, stacklevel=1)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [entry["logger"] for entry in logged] == ["py.warnings"]
    assert "a warning after two configurations" in logged[0]["event"]


@pytest.mark.usefixtures("restored_logging")
def test_urllib3_s_warning_of_unverified_requests_is_logged_once_per_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a kubeconfig's insecure-skip-tls-verify every API request is unverified (a lease renewal every
    2 s); urllib3's own filter warns each one."""
    # As importing urllib3 does; pytest imported it while collecting, in a catch_warnings block that put the
    # filters back afterwards.
    warnings.simplefilter("always", urllib3.exceptions.SecurityWarning, append=True)
    configure_logging(json=True, level="info")
    with _https_server(tmp_path) as port, urllib3.PoolManager(cert_reqs=ssl.CERT_NONE) as unverified:
        for _ in range(3):
            assert unverified.request("GET", f"https://127.0.0.1:{port}/").status == 404
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (warned,) = [entry for entry in logged if entry["logger"] == "py.warnings"]
    assert (
        "InsecureRequestWarning: Unverified HTTPS request is being made to host '127.0.0.1'"
        in warned["event"]
    )

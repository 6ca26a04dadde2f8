"""A kubeconfig user's OIDC id-token refreshed while ``serve`` starts is written back to the kubeconfig (the
kubernetes client's way, kept: an issuer that rotates refresh tokens, as Dex does by default, has revoked
the one in the file), but never once the login was given up on: the process is exiting then, and a write
cut off at interpreter shutdown would leave the user's kubeconfig truncated."""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes.client
import pytest
import structlog
from kubernetes.config import kube_config

from controlplane.sources.kubernetes.kubeconfig_loading import LoginTimedOut, load_kubeconfig
from tests.test_cli_kubeconfig import CLUSTER, EXPIRED_ID_TOKEN, KUBECONFIG_HEAD


def _unsigned_jwt(claims: dict[str, int]) -> str:
    """A JWT the client reads the expiry of (it checks no signature), in base64url without padding."""

    def part(value: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


FRESH_ID_TOKEN = _unsigned_jwt({"exp": 4102444800})
"""Expires in 2100."""


@dataclass
class _Issuer:
    """An OIDC issuer whose token endpoint answers a refresh once ``answer`` is set (``asked``: a refresh
    came)."""

    url: str = ""
    answer: threading.Event = field(default_factory=threading.Event)
    asked: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Issuer]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # it speaks plain HTTP
    found = _Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._json({"issuer": found.url, "token_endpoint": f"{found.url}/token"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            found.asked.set()
            found.answer.wait()
            self._json(
                {
                    "access_token": "access",
                    "token_type": "Bearer",
                    "id_token": FRESH_ID_TOKEN,
                    "refresh_token": "rotated-refresh-token",
                }
            )

        def _json(self, answer: dict[str, str]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's output is the kubeconfig."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    serving = threading.Thread(target=server.serve_forever, name="fake-issuer", daemon=True)
    serving.start()
    try:
        yield found
    finally:
        found.answer.set()
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)


def _kubeconfig(tmp_path: Path, issuer: _Issuer) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n"
        f"      config: {{id-token: {EXPIRED_ID_TOKEN}, idp-issuer-url: '{issuer.url}', client-id: c,"
        " client-secret: client-secret, refresh-token: first-refresh-token}\n"
    )
    return kubeconfig


def test_an_id_token_refreshed_while_the_caller_waits_is_written_back(
    tmp_path: Path, issuer: _Issuer
) -> None:
    kubeconfig = _kubeconfig(tmp_path, issuer)
    issuer.answer.set()
    configuration = kubernetes.client.Configuration()
    load_kubeconfig(kubeconfig, context=None, configuration=configuration, timeout=30)
    assert configuration.api_key == {"BearerToken": f"Bearer {FRESH_ID_TOKEN}"}
    written = kubeconfig.read_text()
    assert FRESH_ID_TOKEN in written
    assert "rotated-refresh-token" in written


def test_an_id_token_refreshed_after_the_caller_gave_up_is_not_written(
    tmp_path: Path, issuer: _Issuer
) -> None:
    kubeconfig = _kubeconfig(tmp_path, issuer)
    before = kubeconfig.read_bytes()
    running_before = set(threading.enumerate())
    with pytest.raises(LoginTimedOut):
        load_kubeconfig(
            kubeconfig, context=None, configuration=kubernetes.client.Configuration(), timeout=0.2
        )
    (login,) = [
        thread for thread in set(threading.enumerate()) - running_before if thread.name == "kubeconfig-login"
    ]
    issuer.answer.set()  # the issuer answers late: the refresh completes on the thread left behind
    login.join(timeout=10)
    assert not login.is_alive()
    assert kubeconfig.read_bytes() == before


class _Interrupted(BaseException):
    """What Ctrl-C raises (``KeyboardInterrupt``), in a form pytest does not take for the user's."""


def test_an_id_token_refreshed_after_the_wait_was_interrupted_is_not_written(
    tmp_path: Path, issuer: _Issuer
) -> None:
    """With no limit (0) a person stops a login that does not finish with Ctrl-C: the process is exiting."""
    kubeconfig = _kubeconfig(tmp_path, issuer)
    before = kubeconfig.read_bytes()
    running_before = set(threading.enumerate())

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    def interrupt_once_the_refresh_is_under_way() -> None:
        issuer.asked.wait()
        os.kill(os.getpid(), signal.SIGUSR1)  # its handler runs on the main thread, the one waiting

    previous = signal.signal(signal.SIGUSR1, interrupt)
    interrupter = threading.Thread(target=interrupt_once_the_refresh_is_under_way, daemon=True)
    try:
        interrupter.start()
        with pytest.raises(_Interrupted):
            load_kubeconfig(
                kubeconfig, context=None, configuration=kubernetes.client.Configuration(), timeout=0
            )
    finally:
        interrupter.join(timeout=10)
        signal.signal(signal.SIGUSR1, previous)
    (login,) = [
        thread for thread in set(threading.enumerate()) - running_before if thread.name == "kubeconfig-login"
    ]
    issuer.answer.set()
    login.join(timeout=10)
    assert not login.is_alive()
    assert kubeconfig.read_bytes() == before


def _read_only_file_system(merger: object, path: str) -> None:
    """A kubeconfig from a Secret, mounted read-only in a Pod (the tests run as root, whom a file's mode
    does not stop: the write fails as ``open`` fails on a read-only mount)."""
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)


def _full_disk(merger: object, path: str) -> None:
    """The file opened for writing (truncated), then the dump into it failing."""
    with open(path, "w") as truncated:  # as the client's save_config opens it
        truncated.write("apiVersion: v1\n")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@pytest.mark.parametrize(
    ("failing_save", "left", "reason"),
    [
        (_read_only_file_system, "kubectl may have to log in again", "Read-only file system"),
        (_full_disk, "the kubeconfig may be left incomplete", "No space left on device"),
    ],
    ids=["refused-opening", "failed-while-writing"],
)
def test_a_kubeconfig_that_cannot_be_written_back_is_a_warning_not_a_failed_login(
    tmp_path: Path,
    issuer: _Issuer,
    monkeypatch: pytest.MonkeyPatch,
    failing_save: Callable[[object, str], None],
    left: str,
    reason: str,
) -> None:
    kubeconfig = _kubeconfig(tmp_path, issuer)
    monkeypatch.setattr(kube_config.KubeConfigMerger, "save_config", failing_save)
    issuer.answer.set()
    configuration = kubernetes.client.Configuration()
    with structlog.testing.capture_logs() as logged:
        load_kubeconfig(kubeconfig, context=None, configuration=configuration, timeout=30)
    assert configuration.api_key == {"BearerToken": f"Bearer {FRESH_ID_TOKEN}"}
    assert logged == [
        {
            "event": "the kubeconfig's user was logged in, but its refreshed token could not be written back"
            f" to the kubeconfig ({left})",
            "kubeconfig": str(kubeconfig),
            "reason": reason,
            "log_level": "warning",
        }
    ]

"""What a user sees when ``serve --kubernetes`` cannot use its kubeconfig: the file and why in one line, and
never a value from the file (tokens, client keys, passwords), in process and on serve's stderr."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.cli import build_parser
from controlplane.commands.serve import _kubernetes_options
from controlplane.log import KUBECONFIG_LOADER_TEXT
from controlplane.sources.base import SourceUnavailable
from controlplane.sources.kubernetes.api import KubeApi
from controlplane.sources.kubernetes.source import KubernetesSource

_UNUSABLE_KUBECONFIGS = {
    "missing": None,
    "not YAML": "clusters: [\n",
    "no current context": "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n",
    "a list": "- apiVersion: v1\n  kind: Config\n",
    "a single value": "kubeconfig\n",
}


@pytest.mark.parametrize("case", sorted(_UNUSABLE_KUBECONFIGS))
def test_a_kubeconfig_that_cannot_be_used_is_named_with_why_in_one_line(tmp_path: Path, case: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    text = _UNUSABLE_KUBECONFIGS[case]
    if text is not None:
        kubeconfig.write_text(text)
    with pytest.raises(SourceUnavailable, match=f"^--kubeconfig {re.escape(str(kubeconfig))}: .+") as raised:
        KubeApi.connect(kubeconfig=kubeconfig)
    assert "\n" not in str(raised.value)


SECRET = "s3cr3t"
"""In every value of the kubeconfigs below that must never be told: tokens, client keys, proxy passwords."""

KUBECONFIG_HEAD = (
    "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
    "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
)
CLUSTER = "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
_USER = f"users:\n- name: u\n  user: {{token: {SECRET}-token}}\n"
EXPIRED_ID_TOKEN = "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.sig"
"""A JWT that expired in 1970 (``{"exp": 1}``)."""
_KUBECONFIGS_WITH_SECRETS = {
    # case: (the kubeconfig, why the message says it is unusable)
    "a user not nested in user:": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  token: {SECRET}-token\n"
        f"  client-key-data: {SECRET}-key\n",
        "Invalid kube-config file. Expected key user in {path}/{{...}}",
    ),
    "a cluster not nested in cluster:": (
        f"{KUBECONFIG_HEAD}clusters:\n- name: k\n  server: https://127.0.0.1:1\n"
        f"  proxy-url: http://admin:{SECRET}@proxy\n{_USER}",
        "Invalid kube-config file. Expected key cluster in {path}/{{...}}",
    ),
    "a token tagged !!int": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user: {{token: !!int {SECRET}}}\n",
        "a value in it is of the wrong type or form (ValueError; its text is left out)",
    ),
    "a user that is a string": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user: {SECRET}-token\n",
        "a value in it is of the wrong type or form (AttributeError; its text is left out)",
    ),
    "a client key not in base64": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n"
        f"  user: {{client-certificate-data: {SECRET}-, client-key-data: {SECRET}-}}\n",
        "a value in it is of the wrong type or form (binascii.Error; its text is left out)",
    ),
    # The loader iterates a string as the list it expects, and names the entry by its first character.
    "users that are a string": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users: {SECRET}\n",
        "its users are not a list of mappings",
    ),
    # urllib3 parses the proxy-url when the client is made, and quotes it whole when it cannot.
    "a proxy-url with a port out of range": (
        f"{KUBECONFIG_HEAD}clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"
        f"    proxy-url: http://user:{SECRET}?x@proxy:99999\n{_USER}",
        "a value in it is of the wrong type or form"
        " (urllib3.exceptions.LocationParseError; its text is left out)",
    ),
    "a proxy-url that is a number": (
        f"{KUBECONFIG_HEAD}clusters:\n- name: k\n"
        f"  cluster: {{server: 'https://127.0.0.1:1', proxy-url: 3128}}\n{_USER}",
        "a value in it is of the wrong type or form (AttributeError; its text is left out)",
    ),
    # PyYAML quotes tag, alias and anchor names.
    "a password that is a tag": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    password: !{SECRET}\n",
        "could not determine a constructor for the tag '...' at line 13, column 15",
    ),
    "a password that is an alias": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    password: *{SECRET}\n",
        "found undefined alias '...' at line 13, column 15",
    ),
    "a token that is an undefined tag handle": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user: {{token: !{SECRET}!x y}}\n",
        "while parsing a node found undefined tag handle '...' at line 12, column 17",
    ),
    "an anchor used twice": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user: &{SECRET} {{token: x}}\n  x: &{SECRET} 1\n",
        "found duplicate anchor '...'; first occurrence at line 12, column 9"
        " second occurrence at line 13, column 6",
    ),
    # The loader reads a file named by a value: a token or a base64 key given as a file name by mistake.
    "a token given as tokenFile": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user: {{tokenFile: {SECRET}-token}}\n",
        "a file it names (tokenFile, certificate-authority, client-certificate, client-key, command)"
        " cannot be read: No such file or directory",
    ),
    "a key given as client-key": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n"
        f"  user: {{client-certificate: {SECRET}-cert, client-key: {SECRET}-key}}\n",
        "a file it names (tokenFile, certificate-authority, client-certificate, client-key, command)"
        " cannot be read: it does not exist",
    ),
    # An expired id-token sends the loader to the IdP, whose errors quote its URL.
    "an expired OIDC id-token": (
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: oidc\n"
        f"      config: {{id-token: {EXPIRED_ID_TOKEN}, idp-issuer-url: 'http://127.0.0.1:1/{SECRET}',"
        f" client-id: c, client-secret: {SECRET}, refresh-token: {SECRET}}}\n",
        "it could not be used (urllib3.exceptions.MaxRetryError; its text is left out)",
    ),
}


@pytest.mark.parametrize("case", sorted(_KUBECONFIGS_WITH_SECRETS))
def test_a_kubeconfig_that_cannot_be_used_is_named_without_its_values(tmp_path: Path, case: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    text, why = _KUBECONFIGS_WITH_SECRETS[case]
    kubeconfig.write_text(text)
    with pytest.raises(SourceUnavailable) as raised:
        KubeApi.connect(kubeconfig=kubeconfig)
    assert str(raised.value) == f"--kubeconfig {kubeconfig}: {why.format(path=kubeconfig)}"
    assert SECRET not in str(raised.value)


def _oidc_user(name: str, issuer: str) -> str:
    """A users entry whose expired id-token the loader refreshes at ``issuer``."""
    return (
        f"- name: {name}\n  user:\n    auth-provider:\n      name: oidc\n"
        f"      config: {{id-token: {EXPIRED_ID_TOKEN}, idp-issuer-url: '{issuer}', client-id: c,"
        f" client-secret: {SECRET}, refresh-token: {SECRET}}}\n"
    )


_TWO_OIDC_USERS = (
    "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n"
    "- name: c\n  context: {{cluster: k, user: current-oidc-user}}\n"
    "- name: other\n  context: {{cluster: k, user: other-oidc-user}}\n"
    "{cluster}users:\n{current}{other}"
)


def _two_oidc_users(issuer: str) -> str:
    """A kubeconfig whose two contexts' users refresh their expired id-tokens at ``issuer``."""
    return _TWO_OIDC_USERS.format(
        cluster=CLUSTER,
        current=_oidc_user("current-oidc-user", issuer),
        other=_oidc_user("other-oidc-user", issuer),
    )


@pytest.mark.parametrize(
    ("context", "user"), [(None, "current-oidc-user"), ("other", "other-oidc-user")], ids=["current", "named"]
)
def test_an_oidc_issuer_that_never_answers_is_given_up_on_naming_the_user_entry(
    tmp_path: Path, context: str | None, user: str
) -> None:
    """The client refreshes an expired id-token with no timeout of its own; an issuer whose listener takes
    connections (the kernel's backlog does) but never answers would hold ``serve``'s start for ever."""
    kubeconfig = tmp_path / "kubeconfig"
    with socket.create_server(("127.0.0.1", 0)) as silent:
        kubeconfig.write_text(_two_oidc_users(f"http://127.0.0.1:{silent.getsockname()[1]}/{SECRET}"))
        with pytest.raises(SourceUnavailable) as raised:
            KubeApi.connect(kubeconfig=kubeconfig, context=context, login_timeout=0.5)
    assert str(raised.value) == (
        f"--kubeconfig {kubeconfig}: its user entry {user!r} was not logged in: its auth-provider or exec"
        " plugin did not finish within 0.5 s (--kubeconfig-login-timeout; 0: no limit)"
    )
    assert SECRET not in str(raised.value)


def test_serve_s_kubeconfig_login_timeout_is_the_time_the_login_is_given(tmp_path: Path) -> None:
    """From the flag to the loader, through the source's options."""
    kubeconfig = tmp_path / "kubeconfig"
    args = build_parser().parse_args(
        ["serve", "--kubernetes", f"--kubeconfig={kubeconfig}", "--kubeconfig-login-timeout=0.25"]
    )
    options = _kubernetes_options(args)
    assert options.kubeconfig_login_timeout == 0.25
    with socket.create_server(("127.0.0.1", 0)) as silent:
        kubeconfig.write_text(_two_oidc_users(f"http://127.0.0.1:{silent.getsockname()[1]}"))
        with pytest.raises(SourceUnavailable, match=r"did not finish within 0\.25 s"):
            KubernetesSource(options)


def test_the_kubeconfig_login_timeout_defaults_to_30_s() -> None:
    args = build_parser().parse_args(["serve", "--kubernetes"])
    assert _kubernetes_options(args).kubeconfig_login_timeout == 30


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", "1e10"])
def test_a_kubeconfig_login_timeout_that_is_no_duration_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--kubernetes", f"--kubeconfig-login-timeout={value}"])
    assert exited.value.code == 2
    expected = f"argument --kubeconfig-login-timeout: '{value}' is not a number of seconds (0 to 9223372036)"
    assert expected in capsys.readouterr().err


_SLOW_EXEC_USER = (
    "users:\n- name: u\n  user:\n"
    "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n"
    "      args: [-c, 'sleep 0.3; echo \"$CREDENTIAL\"']\n"
    '      env: [{name: CREDENTIAL, value: \'{"apiVersion": "client.authentication.k8s.io/v1",'
    ' "kind": "ExecCredential", "status": {"token": "exec-token"}}\'}]\n'
)
"""An exec plugin that takes a while (a person logging in, in its stead) before it gives a token."""


@pytest.mark.envoy
def test_a_kubeconfig_login_timeout_of_0_waits_for_the_login_to_finish(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"{KUBECONFIG_HEAD}{CLUSTER}{_SLOW_EXEC_USER}")
    api = KubeApi.connect(kubeconfig=kubeconfig, login_timeout=0)
    try:
        assert api.server == "https://127.0.0.1:1"
        assert api._client.configuration.api_key == {"BearerToken": "Bearer exec-token"}
    finally:
        api.close()


def test_a_kubeconfig_flag_starting_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--kubeconfig=~/.kube/config``: the shell expands no ``~`` after ``=``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(f"{KUBECONFIG_HEAD}{CLUSTER}{_USER}")
    api = KubeApi.connect(kubeconfig=Path("~/.kube/config"))
    try:
        assert api.server == "https://127.0.0.1:1"
    finally:
        api.close()


def test_a_kubeconfig_that_is_no_utf_8_is_a_yaml_error_naming_the_file_and_no_character(
    tmp_path: Path,
) -> None:
    """The character (of a token, say) is left out; the position is told."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(b"clusters: \xc3\x28\n")
    with pytest.raises(SourceUnavailable) as raised:
        KubeApi.connect(kubeconfig=kubeconfig)
    assert str(raised.value) == (
        f"--kubeconfig {kubeconfig}: unacceptable character: invalid continuation byte at position 10"
    )


def test_a_kubeconfig_flag_naming_an_unknown_user_s_home_is_a_missing_file() -> None:
    """``~nosuchuser`` is left as it is (a path relative to the working folder) rather than raising."""
    with pytest.raises(SourceUnavailable) as raised:
        KubeApi.connect(kubeconfig=Path("~nosuchuser/config"))
    assert str(raised.value) == "--kubeconfig ~nosuchuser/config: No such file or directory"


def test_outside_a_pod_without_a_kubeconfig_the_in_cluster_credentials_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SourceUnavailable, match=r"^in-cluster credentials: .+"):
        KubeApi.connect()


_SERVE_KUBECONFIGS = {case: _UNUSABLE_KUBECONFIGS[case] for case in ("missing", "not YAML")} | {
    # Not the OIDC case: urllib3 logs a warning of its own at each retry to reach the IdP (a fixed text:
    # test_log), so there is more than one line.
    case: text
    for case, (text, _) in _KUBECONFIGS_WITH_SECRETS.items()
    if case != "an expired OIDC id-token"
}


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(_SERVE_KUBECONFIGS))
def test_serve_with_an_unusable_kubeconfig_exits_1_with_one_line_telling_none_of_its_values(
    tmp_path: Path, case: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    text = _SERVE_KUBECONFIGS[case]
    if text is not None:
        kubeconfig.write_text(text)
    command = ["serve", "--kubernetes", f"--kubeconfig={kubeconfig}", "--xds-port=0", "--admin-port=0"]
    done = subprocess.run(
        [sys.executable, "-m", "controlplane", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"controlplane serve: --kubeconfig {kubeconfig}: "), line
    assert SECRET not in done.stderr + done.stdout


FAILING_EXEC_USER = (
    "users:\n- name: u\n  user:\n"
    f"    client-key-data: {SECRET}AA\n"  # base64, as the loader wants it
    "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n"
    f"      args: [-c, 'echo {SECRET}-stderr >&2; exit 1']\n"
    f"      env: [{{value: {SECRET}-env}}]\n"
)
"""An exec credential plugin entry the loader cannot use (an env entry without a name): it logs the whole
users entry, client key and env value included, and goes on without credentials."""


@pytest.mark.envoy
def test_serve_tells_no_value_a_failing_exec_plugin_logged(tmp_path: Path) -> None:
    """The plugin fails (logged), then the proxy-url does (exit 1): stderr has the fixed text, then why."""
    kubeconfig = tmp_path / "kubeconfig"
    cluster = (
        "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"
        f"    proxy-url: http://user:{SECRET}@proxy:99999\n"
    )
    kubeconfig.write_text(f"{KUBECONFIG_HEAD}{cluster}{FAILING_EXEC_USER}")
    command = ["serve", "--kubernetes", f"--kubeconfig={kubeconfig}", "--xds-port=0", "--admin-port=0"]
    done = subprocess.run(
        [sys.executable, "-m", "controlplane", *command, "--log-format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    *logged, last = done.stderr.splitlines()
    (plugin_failed,) = logged
    assert KUBECONFIG_LOADER_TEXT in plugin_failed
    assert last.startswith(f"controlplane serve: --kubeconfig {kubeconfig}: "), last
    assert SECRET not in done.stderr + done.stdout

"""A kubeconfig login that fails when the client runs it again (its token expired) fails the request, as an
``ApiError`` naming no value: the watch, lease and status loops retry it. It escaped them before, a raw
``ConfigException`` quoting the command's stderr: the thread died for good and ``threading.excepthook``
printed the traceback past the log filter.

The login is a ``gcp`` auth-provider's ``cmd-path`` that gives a token on its first run and fails on the
next (the client raises its failure; an exec plugin's it logs, and the log filter rewrites that)."""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi
from controlplane.sources.kubernetes.reflector import Reflector, WatchScope
from tests.test_cli_kubeconfig import CLUSTER, KUBECONFIG_HEAD, SECRET

pytestmark = pytest.mark.envoy  # the login is a command run

_PODS = ApiResource(group="", version="v1", plural="pods", kind="Pod")

_FIRST_RUN_ONLY = """#!/bin/sh
if [ -e "$0.ran" ]; then echo "{secret}-stderr" >&2; exit 1; fi
touch "$0.ran"
echo '{{"credential": {{"access_token": "{secret}-token", "token_expiry": "2000-01-01T00:00:00Z"}}}}'
"""
"""Its token has expired by the time it is used: the client runs the command again for the first request."""


@pytest.fixture
def api(tmp_path: Path) -> KubeApi:
    command = tmp_path / "token-command"
    command.write_text(_FIRST_RUN_ONLY.format(secret=SECRET))
    command.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"{KUBECONFIG_HEAD}{CLUSTER}users:\n- name: u\n  user:\n    auth-provider:\n      name: gcp\n"
        f"      config: {{cmd-path: '{command}'}}\n"
    )
    return KubeApi.connect(kubeconfig=kubeconfig)


def test_a_login_failing_on_a_request_is_an_api_error_naming_no_value(api: KubeApi) -> None:
    try:
        for _ in range(2):  # the next request runs the login again
            with pytest.raises(ApiError) as failed:
                api.list(_PODS)
            assert failed.value.status == 0
            assert str(failed.value) == (
                "GET /api/v1/pods: reading the API credentials failed (ConfigException)"
            )
            assert failed.value.__cause__ is None
            assert failed.value.__suppress_context__
    finally:
        api.close()


class _Sink:
    def replaced(self, scope: WatchScope, objects: Any, /) -> None: ...

    def changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any], /) -> None: ...

    def unavailable(self, scope: WatchScope, reason: str, /) -> None: ...


def test_a_watch_whose_login_fails_keeps_retrying(api: KubeApi) -> None:
    retried = threading.Semaphore(0)

    def counted(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event["event"] == "watch failed, retrying":
            retried.release()
        return event

    reflector = Reflector(api, WatchScope(group="", kind="Pod"), resolve=lambda _: _PODS, sink=_Sink())
    with structlog.testing.capture_logs(processors=[counted]) as logged:
        reflector.start()
        try:
            for _ in range(2):
                assert retried.acquire(timeout=30)
        finally:
            reflector.stop()
            reflector.join(timeout=10)
            api.close()
    assert not any(SECRET in str(entry) for entry in logged)

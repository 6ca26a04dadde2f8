"""A kubeconfig loaded into the kubernetes client's configuration: its shape checked first, the load bounded.

Loading logs the user in, and the client does that with no timeout of its own: an expired OIDC id-token is
refreshed at the ``auth-provider``'s issuer (discovery, then the token endpoint), an ``exec`` plugin is run
and waited for (a ``gcp`` auth-provider's refresh too). An issuer that accepts the connection and never
answers would hold ``serve --kubernetes`` at its start for ever, so the load runs on a thread given a time
(``serve --kubeconfig-login-timeout``, 0 for none: an exec plugin that logs a person in through a browser or
a device code needs their time); one that does not finish is left behind (a daemon: the process exits with
the reason, naming the kubeconfig's user entry by its name, never by a value of it).

A refreshed id-token (and the refresh token the issuer may have rotated with it) is written back to the
kubeconfig, as the client's ``load_kube_config`` does by default and kubectl does: an issuer that rotates
refresh tokens (Dex does by default) has revoked the one in the file, so not writing it back would leave the
user's kubectl unable to refresh. The write goes through ``_WriteBack``, which stops once the caller gave up;
one that fails (a read-only kubeconfig) is a warning.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import kubernetes.client
import kubernetes.config
import structlog
import yaml
from kubernetes.config import kube_config

from controlplane import defaults

_log = structlog.get_logger(__name__)

_NAMED_LISTS = ("clusters", "contexts", "users")
"""The kubeconfig's lists of named entries."""
_REFUSED_OPENING: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
"""Why opening a file for writing fails before truncating it: a read-only mount, a mode or an attribute."""


class LoginTimedOut(Exception):
    """The kubeconfig's user was not logged in within the time given; the message names the user entry."""


def load_kubeconfig(
    kubeconfig: Path,
    *,
    context: str | None,
    configuration: kubernetes.client.Configuration,
    timeout: float = defaults.KUBECONFIG_LOGIN_TIMEOUT_SECONDS,
) -> None:
    """Loads ``kubeconfig`` (its ``context``, None: its current one) into ``configuration``; raises what the
    loader raised, or ``LoginTimedOut`` when the load took longer than ``timeout`` seconds (0: no limit).

    After ``LoginTimedOut`` (or an exception raised into the wait, Ctrl-C's) the caller must exit: the
    thread left behind still holds the loader and may yet log the user in, into ``configuration``, on its
    own time. It no longer writes the kubeconfig (a refresh finishing then is lost, as if the process had
    been killed): the process is exiting, and a write cut off at interpreter shutdown (which stops daemon
    threads wherever they are) would leave the file truncated."""
    document = _checked_document(kubeconfig)
    failed: list[BaseException] = []
    finished = threading.Event()
    write_back = _WriteBack(kubeconfig)

    def load() -> None:
        try:
            # load_kube_config's steps, with a persister that can be stopped (it takes none of its own).
            merger = kube_config.KubeConfigMerger(str(kubeconfig))  # type: ignore[no-untyped-call]
            if merger.config is None:
                raise kubernetes.config.ConfigException("Invalid kube-config file. No configuration found.")
            loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
                config_dict=merger.config,
                config_base_path=None,
                active_context=context,
                config_persister=write_back.persister(merger),
            )
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except BaseException as error:  # raised on the caller's thread, below
            failed.append(error)
        finally:
            finished.set()

    threading.Thread(target=load, name="kubeconfig-login", daemon=True).start()
    in_time = False
    try:
        in_time = finished.wait(timeout if timeout > 0 else None)
    finally:
        if not in_time:  # run out of time, or the wait itself interrupted (Ctrl-C): the process is exiting
            write_back.give_up()
    if not in_time:
        user = _user_entry(document, context)
        named = f"its user entry {user!r}" if user is not None else "its user"
        raise LoginTimedOut(
            f"{named} was not logged in: its auth-provider or exec plugin did not finish within "
            f"{timeout:g} s (--kubeconfig-login-timeout; 0: no limit)"
        )
    if failed:
        raise failed[0]


class _WriteBack:
    """Writes what a login changed in the kubeconfig (a refreshed token) back to it, until ``give_up``.

    A kubeconfig that cannot be written (a Secret mounted read-only in a Pod) does not fail the login: the
    refreshed token is used all the same, and a warning says it was not kept (naming the file as the flag
    did, nothing of its contents)."""

    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = kubeconfig
        self._lock = threading.Lock()
        self._given_up = False

    def persister(self, merger: Any) -> Callable[[], None]:
        """The loader's ``config_persister`` for the files ``merger`` (a ``KubeConfigMerger``) read."""

        def save_changes() -> None:
            with self._lock:
                if self._given_up:
                    return
                try:
                    merger.save_changes()
                except OSError as error:
                    # The client opens the file for writing, which truncates it, then dumps into it: a refused
                    # open leaves the file as it was, a failure while dumping (a full disk) leaves a part.
                    left = (
                        "kubectl may have to log in again"
                        if error.errno in _REFUSED_OPENING
                        else "the kubeconfig may be left incomplete"
                    )
                    _log.warning(
                        "the kubeconfig's user was logged in, but its refreshed token could not be written "
                        f"back to the kubeconfig ({left})",
                        kubeconfig=str(self._kubeconfig),
                        reason=error.strerror or type(error).__name__,  # the path is in its str()
                    )

        return save_changes

    def give_up(self) -> None:
        """No write from now on; one under way is finished first (this waits for it: a local file)."""
        with self._lock:
            self._given_up = True


def _checked_document(kubeconfig: Path) -> dict[str, Any] | None:
    """The kubeconfig, with what the kubernetes loader takes for granted checked first, as a
    ``ConfigException``. A top level that is no mapping (a YAML list) fails there with a ``TypeError``; a
    named list that is a string is iterated character by character, and its first character ends up in the
    message (``Expected key name in PATH/S``): quoting a token's first character is no better than quoting
    the token."""
    # A binary stream: YAML errors then quote no line of the file, and a file that is no UTF-8 is PyYAML's
    # ReaderError (a YAMLError) rather than a UnicodeDecodeError.
    with kubeconfig.open("rb") as stream:
        document = yaml.safe_load(stream)
    if document is None:
        return None
    if not isinstance(document, dict):
        found = "a list" if isinstance(document, list) else "a single value"
        raise kubernetes.config.ConfigException(
            f"its top level is {found}, not the mapping of a kubeconfig (apiVersion, clusters, contexts, ...)"
        )
    for key in _NAMED_LISTS:
        entries = document.get(key)
        if entries is not None and not (
            isinstance(entries, list) and all(isinstance(entry, dict) for entry in entries)
        ):
            raise kubernetes.config.ConfigException(f"its {key} are not a list of mappings")
    return document


def _user_entry(document: dict[str, Any] | None, context: str | None) -> str | None:
    """The name of the user entry ``context`` (None: the current context) names, if it names one."""
    if document is None:
        return None
    wanted = context if context is not None else document.get("current-context")
    for entry in document.get("contexts") or ():
        settings = entry.get("context")
        if entry.get("name") == wanted and isinstance(settings, dict):
            user = settings.get("user")
            return user if isinstance(user, str) else None
    return None

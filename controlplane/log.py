"""Logging set-up for every entry point: structured JSON in production, readable console output locally.

All project code logs through `structlog.get_logger(__name__)`; this module decides how those events are
rendered. Standard-library loggers (grpc, aiohttp) go through the same renderer to the same stream, so a
production log is one uniform stream of JSON objects. The kubernetes client's kubeconfig loader logs what its
exec credential plugin did wrong with the kubeconfig's values in it; those records are rewritten here. When it
refreshes an expired OIDC id-token, the OAuth2 libraries it calls log the client secret, the refresh token
and the issuer's answer at DEBUG; those loggers are held at WARNING, whatever the level asked. urllib3's
records of the loader's requests (its retries' warnings) quote the issuer URL's path, a kubeconfig value
like the others: they are rewritten too, and so is its ``InsecureRequestWarning`` (the loader does not verify
an issuer given no CA), which names the issuer's host: Python's warnings are logged (``py.warnings``), so
that they go through the same filter and renderer (a JSON log stays JSON).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from types import FrameType

import structlog

KUBECONFIG_LOADER_TEXT = "the kubeconfig's exec credential plugin failed; its text is left out"
KUBECONFIG_LOGIN_REQUEST_TEXT = (
    "a request logging the kubeconfig's user in (at its OIDC issuer, say) logged this; its text is left out"
)
OAUTH2_CLIENT_LOGGERS = ("requests_oauthlib", "oauthlib")
"""Whose DEBUG records quote an OAuth2 client's secret, refresh token and token answer (the kubernetes client
refreshes a kubeconfig's expired OIDC id-token through them when it loads the kubeconfig; kubernetes 37.0.3
does it then only: it keeps no expiry for an OIDC user, so its per-request refresh hook never refreshes one);
their client code logs nothing above DEBUG, so holding them at WARNING loses nothing of use."""


_UNVERIFIED_REQUEST_WARNING = "Unverified HTTPS request"
"""How urllib3's ``InsecureRequestWarning`` for a request it did not verify starts (2.x, naming the host)."""
_LOGIN_REQUEST_LOGGERS = ("urllib3", "py.warnings")
"""Loggers whose records, within a call the loader made, are about its requests: urllib3's, and Python's
warnings (urllib3 warns an unverified HTTPS request, naming the host, through ``warnings``)."""


class KubeconfigLoaderFilter(logging.Filter):
    """Rewrites every record of the kubernetes client's kubeconfig loader to one fixed text, and urllib3's
    records of the requests the loader makes (its logs and its warnings) to another.

    When an exec credential plugin fails (at connect and at every token refresh, in the watch threads), the
    loader logs the exception's text: the whole ``users`` entry (client keys, the plugin's env values), the
    plugin's stderr or output. Its other records are about the same plugin.

    The loader logs through the root logger (``logging.error(str(e))``), so no logger name tells its records
    apart: a record's ``pathname`` does, when it is in the installed package's ``config`` folder (any other
    folder called ``kubernetes/config``, a checkout or a venv under one, is someone else's)."""

    def __init__(self) -> None:
        super().__init__()
        self._loader_folder = _installed_kubeconfig_loader_folder()

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "_logger"):
            return True  # structlog's (ours): its message is the event dict, which its formatter needs as is
        in_loader = self._loader_folder is not None and record.pathname.startswith(self._loader_folder)
        if in_loader or record.name.startswith("kubernetes.config"):
            _rewrite(record, KUBECONFIG_LOADER_TEXT)
        elif record.name.startswith(_LOGIN_REQUEST_LOGGERS) and self._loader_is_calling():
            _rewrite(record, KUBECONFIG_LOGIN_REQUEST_TEXT)
        return True

    def _loader_is_calling(self) -> bool:
        """Whether the loader is on this thread's stack: the record comes from within a call it made (a
        filter runs on the thread that logs). Walked for urllib3's records and warnings only, which are
        few."""
        if self._loader_folder is None:
            return False
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith(self._loader_folder):
                return True
            frame = frame.f_back
        return False


def _rewrite(record: logging.LogRecord, text: str) -> None:
    """``record`` saying ``text`` only (its level and logger name kept)."""
    record.msg, record.args = text, ()
    record.exc_info, record.exc_text, record.stack_info = None, None, None


def _installed_kubeconfig_loader_folder() -> str | None:
    """The kubernetes client's ``config`` folder, ending in a separator; ``None`` when the client is not
    installed. Found without importing the client (slow, and not every entry point needs it)."""
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(spec.submodule_search_locations[0], "config") + os.sep


def configure_logging(*, json: bool, level: str) -> None:
    """Configure structlog and the standard library logging.

    `level` is a standard level name (``debug``, ``info``, ``warning``, ``error``, ``critical``, or ``warn``
    for ``warning``); case does not matter.
    """
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}")
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        # Told the traceback is plain so that it prints format_exc_info's string as is.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    # Tracebacks become a plain string field in both forms: JSON lines need one, and the console renderer's
    # own default (with rich installed) prints every frame's local variables, which may hold a key.
    tail: list[structlog.typing.Processor] = [structlog.processors.format_exc_info, renderer]
    # structlog events are handed to the standard library so that both kinds of records share one handler
    # (and the logger name is known for both).
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    # On the root logger, which the loader logs through, for every handler (one added later included); on
    # ours for a record of a kubernetes.config logger, which reaches handlers past the root logger's filters.
    loader_filter = KubeconfigLoaderFilter()
    handler.addFilter(loader_filter)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.filters = [kept for kept in root.filters if not isinstance(kept, KubeconfigLoaderFilter)]
    root.addFilter(loader_filter)
    root.setLevel(numeric_level)
    # Through the handler and its filter: urllib3 warns naming an issuer. Turned off first: turning it on does
    # nothing while logging still holds the showwarning it saved, as it does once warnings.showwarning was put
    # back from under it (by a warnings.catch_warnings block, such as the one pytest runs each test in).
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    # urllib3 warns every unverified HTTPS request ("always", its own filter): with a kubeconfig's
    # insecure-skip-tls-verify, each API request (a lease renewal every 2 s) would be a log line. Matched by
    # its text, not its class, so that no entry point imports urllib3 (35 ms) for the filter's sake. Once per
    # host, and again after the filters change (Python then forgets what it showed).
    warnings.filterwarnings("once", message=_UNVERIFIED_REQUEST_WARNING, module="urllib3")
    for name in OAUTH2_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric_level))

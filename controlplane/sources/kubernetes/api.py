"""The few Kubernetes API calls the source makes, over the official ``kubernetes`` client's connection.

The client's typed APIs would decode every object into generated classes only for us to turn them back into
dicts, and its watch helper hides what a reflector has to see (bookmarks, ``410 Gone`` as an ERROR event,
the stream's end). So this keeps the client for what it is good at (kubeconfig and in-cluster loading, TLS,
credentials and their refresh, connection pooling) and speaks the REST API directly: list, watch, discovery,
status patches and Leases. Every call is blocking; the source runs them on threads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kubernetes.client
import kubernetes.config
import urllib3

from controlplane import defaults
from controlplane.sources.base import SourceUnavailable
from controlplane.sources.kubernetes.kubeconfig_errors import told_reason
from controlplane.sources.kubernetes.kubeconfig_loading import LoginTimedOut, load_kubeconfig

_CONNECT_TIMEOUT = 10.0
_REQUEST_TIMEOUT = 30.0


class ApiError(Exception):
    """A non-2xx answer from the API server (or no answer at all: ``status`` 0).

    ``sent`` is False when the request surely never reached the server (the credentials or the connection
    failed): nothing was applied, and the next request fails alike. A request that went out but got no
    answer (a read timeout, a reset) may have been applied.
    """

    def __init__(self, status: int, message: str, *, reason: str = "", sent: bool = True) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.sent = sent


@dataclass(frozen=True, slots=True)
class ApiResource:
    """Where a kind lives in the REST API: ``/apis/{group}/{version}/[namespaces/{ns}/]{plural}``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scoped = f"{root}/namespaces/{quote(namespace)}" if namespace and self.namespaced else root
        item = f"/{quote(name)}" if name else ""
        return f"{scoped}/{self.plural}{item}"


class WatchStream:
    """The events of one watch request, decoded; ``close`` (from any thread) ends the iteration."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pending = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        event: dict[str, Any] = json.loads(line)
                        yield event
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            if not self._response.closed:
                raise ApiError(0, f"watch stream broke: {error}") from error
        finally:
            self._response.release_conn()

    def close(self) -> None:
        self._response.shutdown()


_CONNECTION_POOL_SIZE = 64


class KubeApi:
    """One API server connection: from a kubeconfig file, or the Pod's in-cluster credentials."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self._client = client

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        login_timeout: float = defaults.KUBECONFIG_LOGIN_TIMEOUT_SECONDS,
    ) -> KubeApi:
        """In-cluster configuration when ``kubeconfig`` is None, else that file, whose user is logged in
        within ``login_timeout`` seconds, 0: no limit (``kubeconfig_loading``)."""
        configuration = kubernetes.client.Configuration()
        # `--kubeconfig=~/.kube/config` reaches us with the `~` unexpanded (the shell expands it only at a
        # word's start); os.path's expanduser leaves a `~nosuchuser` as it is (Path's raises), so the file is
        # then missing like any other.
        kubeconfig = Path(os.path.expanduser(kubeconfig)) if kubeconfig is not None else None
        try:
            if kubeconfig is None:
                kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                load_kubeconfig(
                    kubeconfig, context=context, configuration=configuration, timeout=login_timeout
                )
            # Every watch holds a connection for minutes; the default pool of 10 would churn connections.
            configuration.connection_pool_maxsize = _CONNECTION_POOL_SIZE
            # The client parses the proxy-url here: a malformed one is an error quoting it, password and all.
            client = kubernetes.client.ApiClient(configuration)
        except LoginTimedOut as error:
            raise SourceUnavailable(f"--kubeconfig {kubeconfig}: {error}") from None
        except Exception as error:
            # A mistyped path or running outside a Pod is the user's to fix: say which, without a traceback.
            # Any error: the loader, PyYAML, urllib3 (the proxy-url) and an OIDC refresh (the IdP) all raise
            # their own, and told_reason keeps the text only of those known to quote no value.
            where = f"--kubeconfig {kubeconfig}" if kubeconfig is not None else "in-cluster credentials"
            raise SourceUnavailable(f"{where}: {told_reason(error, kubeconfig=kubeconfig)}") from None
        return cls(client)

    @property
    def server(self) -> str:
        host: str = self._client.configuration.host
        return host

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    # --- reads ---

    def discover(self, group: str) -> tuple[list[str], str | None]:
        """The versions of ``group`` the server serves and its preferred one (``[]``: group not served)."""
        try:
            found = self._json("GET", "/api" if not group else f"/apis/{group}")
        except ApiError as error:
            if error.status == 404:
                return [], None
            raise
        if not group:
            return list(found.get("versions", [])), "v1"
        versions = [entry["version"] for entry in found.get("versions", [])]
        preferred = (found.get("preferredVersion") or {}).get("version")
        return versions, preferred

    def resources(self, group: str, version: str) -> list[dict[str, Any]]:
        """The resource list of one group version (plural names, kinds, scopes, verbs)."""
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        found: list[dict[str, Any]] = self._json("GET", path).get("resources", [])
        return found

    def list(
        self,
        resource: ApiResource,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        query: dict[str, str] = {"limit": str(limit)}
        if field_selector:
            query["fieldSelector"] = field_selector
        if continue_token:
            query["continue"] = continue_token
        found: dict[str, Any] = self._json("GET", resource.path(namespace), query=query)
        return found

    def get(self, resource: ApiResource, *, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._json("GET", resource.path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return found

    def watch(
        self,
        resource: ApiResource,
        *,
        namespace: str | None,
        resource_version: str,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream:
        """A watch from ``resource_version``, with bookmarks; the server ends it after ``timeout_seconds``."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if field_selector:
            query["fieldSelector"] = field_selector
        # Reads may wait a whole timeout for an event; a little more than that means the server is gone.
        response = self._request(
            "GET", resource.path(namespace), query=query, read_timeout=timeout_seconds + 30.0
        )
        return WatchStream(response)

    # --- writes ---

    def patch_status(
        self, resource: ApiResource, *, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Replaces ``status`` through the status subresource (a JSON merge patch)."""
        self._json(
            "PATCH",
            resource.path(namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def create(self, resource: ApiResource, *, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._json("POST", resource.path(namespace), body=body)
        return created

    def replace(
        self, resource: ApiResource, *, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT: fails with 409 when ``body``'s resourceVersion is no longer current (optimistic locking)."""
        replaced: dict[str, Any] = self._json("PUT", resource.path(namespace, name), body=body)
        return replaced

    # --- transport ---

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = self._request(method, path, query=query, body=body, content_type=content_type)
        data = _read_body(response, method=method, path=path)
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:  # a proxy's page in front of the API server: no exception of another kind escapes
            decoded = None
        if not isinstance(decoded, dict):
            raise ApiError(0, f"{method} {path}: the answer is no JSON object ({len(data)} bytes)")
        return decoded

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        read_timeout: float = _REQUEST_TIMEOUT,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            # Reading the credentials runs the client's refresh hook: an expired exec or gcp auth-provider
            # login is run again (in-cluster, the token file is read again), and its errors quote the
            # kubeconfig's values or the command's stderr: only their type is told.
            method, url, headers, serialized, post = self._client.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
        except Exception as error:
            # An ApiError like a failed request's: the callers' loops retry it rather than die of it.
            raise ApiError(
                0,
                f"{method} {path}: reading the API credentials failed ({type(error).__name__})",
                sent=False,
            ) from None
        try:
            reply = self._client.call_api(
                method, url, headers, serialized, post, _request_timeout=(_CONNECT_TIMEOUT, read_timeout)
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiError(0, f"{method} {path}: {error}", sent=not _never_connected(error)) from error
        response: urllib3.BaseHTTPResponse = reply.response
        if response.status >= 300:
            _raise_for(method, path, response.status, _read_body(response, method=method, path=path))
        return response


def _read_body(response: urllib3.BaseHTTPResponse, *, method: str, path: str) -> bytes:
    """The whole body, its connection released. Responses are not preloaded (a watch streams), so the body
    is read here, and a reset or a read timeout in it is an ``ApiError`` like one before the answer: the
    callers' loops retry those, where urllib3's own errors would end their threads."""
    try:
        return response.data
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ApiError(0, f"{method} {path}: reading the answer failed: {error}") from error
    finally:
        response.release_conn()


def _never_connected(error: Exception) -> bool:
    """Whether urllib3's ``error`` says no connection was made (refused, name not resolved, connect timeout),
    to a proxy too and after urllib3's own retries: only then did the request surely not reach the server.
    urllib3 judges so too when it retries a POST or PATCH; a read timeout or a reset may come after the
    server took the request."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, urllib3.exceptions.ProxyError):
        error = error.original_error
    # NewConnectionError (and its NameResolutionError) is a ConnectTimeoutError.
    return isinstance(error, urllib3.exceptions.ConnectTimeoutError)


def _raise_for(method: str, path: str, status: int, data: bytes) -> None:
    try:
        decoded = json.loads(data)
        message, reason = str(decoded.get("message", "")), str(decoded.get("reason", ""))
    except ValueError:
        message, reason = data.decode(errors="replace")[:500], ""
    raise ApiError(status, f"{method} {path}: {message}", reason=reason)

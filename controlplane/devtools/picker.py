"""An endpoint picker of our own: a gRPC ``ext_proc`` server speaking the Inference Extension's endpoint
picker protocol, for fast tests and benchmarks (the real picker is ``devtools.epp``).

It does what the protocol asks of a picker in ``FULL_DUPLEX_STREAMED`` mode, as the reference one does: it
reads the request headers and body, names the chosen endpoint in the ``x-gateway-destination-endpoint``
header and the ``envoy.lb`` dynamic metadata, streams the body back unchanged, and echoes the response,
recording the endpoint Envoy reports as having served it.
Which endpoint it names, and how it misbehaves (erroring, naming an address outside the pool), is a
mode the test sets, like the fake backend's. It serves TLS with a throw-away certificate, as the reference
picker does by default, so Envoy reaches it exactly as it reaches that one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from google.protobuf import struct_pb2

from controlplane.devtools.certs import CertificateAuthority
from controlplane.xds.translator.filters.endpoint_picker import (
    DESTINATION_ENDPOINT_KEY,
    DESTINATION_ENDPOINT_NAMESPACE,
    SERVED_ENDPOINT_KEY,
)

__all__ = ["Erroring", "LocalPicker", "Outside", "PickerMode", "RoundRobin"]

_WORKERS = 32


@dataclass(frozen=True)
class RoundRobin:
    """Name the endpoints in turn (with the next one as the fallback)."""


@dataclass(frozen=True)
class Erroring:
    """End every stream with a gRPC error."""


@dataclass(frozen=True)
class Outside:
    """Name this ``ip:port``, which is not one of the pool's endpoints."""

    address: str


PickerMode = RoundRobin | Erroring | Outside


class LocalPicker:
    """The picker on ``host`` (an OS-chosen port unless given), choosing among ``endpoints`` (``ip:port``)."""

    def __init__(
        self, *, endpoints: Sequence[str], host: str = "127.0.0.1", port: int = 0, tls: bool = True
    ) -> None:
        """``tls=False`` serves plaintext HTTP/2, as the real picker does with ``--secure-serving=false``."""
        self._host = host
        self._tls = tls
        self._port = port
        self._lock = threading.Lock()
        self._endpoints = list(endpoints)
        self._turn = itertools.count()
        self._mode: PickerMode = RoundRobin()
        self._picks: list[str] = []
        self._served: list[str] = []
        self._header_names: list[frozenset[str]] = []
        self._server: grpc.Server | None = None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the picker has no port yet: start it first")
        return self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def picks(self) -> list[str]:
        """Every endpoint named so far (the first of each list), oldest first."""
        with self._lock:
            return list(self._picks)

    @property
    def served(self) -> list[str]:
        """The endpoint that served each response, as Envoy reported it, oldest first."""
        with self._lock:
            return list(self._served)

    @property
    def header_names(self) -> list[frozenset[str]]:
        """The names of the request headers Envoy sent with each request, oldest first."""
        with self._lock:
            return list(self._header_names)

    def record_header_names(self, names: frozenset[str]) -> None:
        with self._lock:
            self._header_names.append(names)

    def record_served(self, endpoint: str) -> None:
        with self._lock:
            self._served.append(endpoint)

    def set_mode(self, mode: PickerMode) -> None:
        with self._lock:
            self._mode = mode

    def start(self) -> Self:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=_WORKERS))
        ext_proc_grpc.add_ExternalProcessorServicer_to_server(_Servicer(self), server)
        address = f"{self._host}:{self._port}"
        if self._tls:
            authority = CertificateAuthority(common_name="local picker CA")
            issued = authority.issue(common_name="picker", dns_names=["localhost"], ips=[self._host])
            credentials = grpc.ssl_server_credentials([(issued.key_pem, issued.certificate_pem)])
            self._port = server.add_secure_port(address, credentials)
        else:
            self._port = server.add_insecure_port(address)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving (open streams end at once); ``start`` serves on the same port again."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def choose(self) -> tuple[PickerMode, list[str]]:
        """The mode in force and the endpoints to name for one request (primary first), recorded."""
        with self._lock:
            mode = self._mode
            if isinstance(mode, Outside):
                chosen = [mode.address]
            elif not self._endpoints:
                chosen = []
            else:
                start = next(self._turn)
                count = len(self._endpoints)
                chosen = [self._endpoints[(start + offset) % count] for offset in range(min(2, count))]
            if chosen:
                self._picks.append(chosen[0])
            return mode, chosen


class _Servicer(ext_proc_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, picker: LocalPicker) -> None:
        self._picker = picker

    def Process(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        body: list[bytes] = []
        for request in requests:
            kind = request.WhichOneof("request")
            if kind == "request_headers":
                headers = request.request_headers.headers.headers
                self._picker.record_header_names(frozenset(header.key for header in headers))
                if request.request_headers.end_of_stream:
                    yield from self._pick(context, body=None)
            elif kind == "request_body":
                body.append(request.request_body.body)
                if request.request_body.end_of_stream:
                    yield from self._pick(context, body=b"".join(body))
            elif kind == "request_trailers":
                yield ext_proc.ProcessingResponse(request_trailers=ext_proc.TrailersResponse())
            elif kind == "response_headers":
                reported = request.metadata_context.filter_metadata.get(DESTINATION_ENDPOINT_NAMESPACE)
                if reported is not None and SERVED_ENDPOINT_KEY in reported.fields:
                    self._picker.record_served(reported.fields[SERVED_ENDPOINT_KEY].string_value)
                yield ext_proc.ProcessingResponse(response_headers=ext_proc.HeadersResponse())
            elif kind == "response_body":
                chunk = request.response_body
                yield ext_proc.ProcessingResponse(response_body=_streamed(chunk.body, chunk.end_of_stream))
            elif kind == "response_trailers":
                yield ext_proc.ProcessingResponse(response_trailers=ext_proc.TrailersResponse())

    def _pick(self, context: grpc.ServicerContext, *, body: bytes | None) -> Iterator[Any]:
        """The headers answer naming the endpoint(s), then (full duplex) the body streamed back."""
        mode, chosen = self._picker.choose()
        if isinstance(mode, Erroring):
            context.abort(grpc.StatusCode.UNAVAILABLE, "the picker is failing on purpose")
        if not chosen:
            yield ext_proc.ProcessingResponse(
                immediate_response=ext_proc.ImmediateResponse(status={"code": 503}, body=b"no endpoint")
            )
            return
        value = ",".join(chosen)
        metadata = struct_pb2.Struct()
        metadata.update({DESTINATION_ENDPOINT_NAMESPACE: {DESTINATION_ENDPOINT_KEY: value}})
        headers = ext_proc.CommonResponse(
            header_mutation=ext_proc.HeaderMutation(
                set_headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=DESTINATION_ENDPOINT_KEY, raw_value=value.encode())
                    )
                ]
            )
        )
        yield ext_proc.ProcessingResponse(
            request_headers=ext_proc.HeadersResponse(response=headers), dynamic_metadata=metadata
        )
        if body is not None:
            yield ext_proc.ProcessingResponse(request_body=_streamed(body, True))


def _streamed(body: bytes, end_of_stream: bool) -> Any:
    return ext_proc.BodyResponse(
        response=ext_proc.CommonResponse(
            body_mutation=ext_proc.BodyMutation(
                streamed_response=ext_proc.StreamedBodyResponse(body=body, end_of_stream=end_of_stream)
            )
        )
    )

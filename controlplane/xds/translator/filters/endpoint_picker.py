"""Ask an InferencePool's endpoint picker (EPP) which pool endpoint serves a request: Envoy's ``ext_proc``.

The contract is the Gateway API Inference Extension's endpoint picker protocol (its proposal 004): the
picker reads the request (headers, then the body streamed in ``FULL_DUPLEX_STREAMED`` mode, as its reference
implementation requires) and names the chosen ``ip:port`` (then fallbacks, comma-separated) in the
``x-gateway-destination-endpoint`` header and in the ``envoy.lb`` dynamic metadata namespace, which this
filter is allowed to receive. The pool's cluster then sends the request there (``load_balancing``).

The protocol also wants the endpoint that really served the request (a fallback, after a retry) reported
back with the response, as ``x-gateway-destination-endpoint-served`` in the ``envoy.lb`` metadata Envoy
forwards to the picker: the hop's route writes ``%UPSTREAM_HOST%`` into a response header of that name and
``served_endpoint_filter``, which runs on the response before the picker does, moves it into the metadata.

The filter sits in the pool's backend hop only, so only requests to that pool call its picker, once per
attempt. A picker that is down or erroring makes the hop answer 503 (in OpenAI's error JSON, like every
local reply of the hop). Envoy 1.40 neither fails open (``failure_mode_allow``) nor applies
``message_timeout`` in ``FULL_DUPLEX_STREAMED`` mode (the body is already handed to the picker), so the
pool's ``failureMode`` is honoured one level up: a ``FailOpen`` pool's rule retries that 503 on a second hop
to the same Pods without the picker (``gatewayapi.routes``), a ``FailClose`` pool's rule does not.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import grpc_service_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import http_status_pb2

from controlplane import ir
from controlplane.xds.translator.messages import pack

DESTINATION_ENDPOINT_KEY = "x-gateway-destination-endpoint"
"""The header and metadata key under which the picker names the chosen endpoint(s)."""
DESTINATION_ENDPOINT_NAMESPACE = "envoy.lb"
"""The dynamic metadata namespace the picker writes the chosen endpoint(s) into."""
SERVED_ENDPOINT_KEY = "x-gateway-destination-endpoint-served"
"""The header and metadata key under which Envoy tells the picker which endpoint served the request."""

_MODE = processing_mode_pb2.ProcessingMode


def endpoint_picker_filter(picker: ir.EndpointPicker) -> Any:
    config = ext_proc_pb2.ExternalProcessor(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                cluster_name=picker.cluster, authority=picker.authority
            )
        ),
        processing_mode=_MODE(
            request_header_mode=_MODE.SEND,
            request_body_mode=_MODE.FULL_DUPLEX_STREAMED,
            # Envoy requires trailers to be sent with full-duplex bodies.
            request_trailer_mode=_MODE.SEND,
            response_header_mode=_MODE.SEND,
            response_body_mode=_MODE.FULL_DUPLEX_STREAMED,
            response_trailer_mode=_MODE.SEND,
        ),
        status_on_error=http_status_pb2.HttpStatus(code=http_status_pb2.ServiceUnavailable),
        metadata_options=ext_proc_pb2.MetadataOptions(
            receiving_namespaces=ext_proc_pb2.MetadataOptions.MetadataNamespaces(
                untyped=[DESTINATION_ENDPOINT_NAMESPACE]
            ),
            forwarding_namespaces=ext_proc_pb2.MetadataOptions.MetadataNamespaces(
                untyped=[DESTINATION_ENDPOINT_NAMESPACE]
            ),
        ),
    )
    if picker.withheld_headers:
        config.forward_rules.disallowed_headers.patterns.extend(
            string_pb2.StringMatcher(exact=name, ignore_case=True) for name in picker.withheld_headers
        )
    return hcm.HttpFilter(name="envoy.filters.http.ext_proc", typed_config=pack(config))


def served_endpoint_filter() -> Any:
    """Moves the served endpoint from the response header the hop's route adds into the metadata (and
    removes the header: it is for the picker, not the client)."""
    config = header_to_metadata_pb2.Config(
        response_rules=[
            header_to_metadata_pb2.Config.Rule(
                header=SERVED_ENDPOINT_KEY,
                on_header_present=header_to_metadata_pb2.Config.KeyValuePair(
                    metadata_namespace=DESTINATION_ENDPOINT_NAMESPACE, key=SERVED_ENDPOINT_KEY
                ),
                remove=True,
            )
        ]
    )
    return hcm.HttpFilter(name="envoy.filters.http.header_to_metadata", typed_config=pack(config))

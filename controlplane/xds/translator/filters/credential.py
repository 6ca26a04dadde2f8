"""Inject a backend's credential (BackendSecurityPolicy APIKey) as a header, replacing the client's.

The value reaches Envoy as an SDS generic secret over ADS, so it is not part of any listener, never shown by
``translate`` and redacted by Envoy's own config dump; rotating the Secret is one SDS push, no restart.

A policy's ``credentialOverride`` (``ir.CredentialOverride``) is a ``header_mutation`` filter after the
injector that, when the request carries the override header, sets the credential header from it and
removes it; a matcher skips the filter for a request without one (so it keeps the configured credential
and costs nothing). Without the header and without fallback the hop's route answers 401 instead
(``no_credential_route``).
"""

from __future__ import annotations

from typing import Any, Final

from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.http.credential_injector.v3 import credential_injector_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.http.injected_credentials.generic.v3 import generic_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from xds.type.matcher.v3 import regex_pb2 as xds_regex_pb2
from xds.type.matcher.v3 import string_pb2 as xds_string_pb2

from controlplane import ir
from controlplane.xds.translator.filters.request_matching import request_header_is, skip_unless
from controlplane.xds.translator.messages import ads_source, overwritten_header, pack

_NON_EMPTY: Final = ".+"
"""What counts as carrying the override header: a non-empty value (an empty one is no credential)."""


def credential_filter(*, secret_name: str, header: str) -> Any:
    generic = generic_pb2.Generic(
        credential=secret_pb2.SdsSecretConfig(name=secret_name, sds_config=ads_source()), header=header
    )
    config = credential_injector_pb2.CredentialInjector(
        overwrite=True,
        credential=extension_pb2.TypedExtensionConfig(
            name="envoy.http.injected_credentials.generic", typed_config=pack(generic)
        ),
    )
    return hcm.HttpFilter(name="envoy.filters.http.credential_injector", typed_config=pack(config))


def credential_override_filter(*, header: str, override: ir.CredentialOverride) -> Any:
    """After ``credential_filter``: ``header`` from the override header's value, which is then removed."""
    mutation = header_mutation_pb2.HeaderMutation(
        mutations=header_mutation_pb2.Mutations(
            request_mutations=[
                mutation_rules_pb2.HeaderMutation(
                    append=overwritten_header(header, f"{override.prefix}%REQ({override.header})%")
                ),
                mutation_rules_pb2.HeaderMutation(remove=override.header),
            ]
        )
    )
    name = "envoy.filters.http.header_mutation"
    config = extension_matcher_pb2.ExtensionWithMatcher(
        extension_config=extension_pb2.TypedExtensionConfig(name=name, typed_config=pack(mutation)),
        xds_matcher=_unless_carried(override.header),
    )
    return hcm.HttpFilter(name=name, typed_config=pack(config))


def no_credential_route(*, name: str, override: ir.CredentialOverride) -> Any:
    """The hop's first route when the override has no fallback: a request without the header gets 401."""
    return rc.Route(
        name=f"{name}/no-credential",
        match=rc.RouteMatch(
            prefix="/",
            headers=[
                rc.HeaderMatcher(
                    name=override.header,
                    string_match=string_pb2.StringMatcher(
                        safe_regex=regex_pb2.RegexMatcher(regex=_NON_EMPTY)
                    ),
                    invert_match=True,
                    treat_missing_header_as_empty=True,
                )
            ],
        ),
        direct_response=rc.DirectResponseAction(
            status=401,
            body=base_pb2.DataSource(
                inline_string=f"this backend takes the caller's credential from the {override.header} header"
            ),
        ),
    )


def _unless_carried(header: str) -> Any:
    """Skip the filter for a request without a non-empty ``header``."""
    non_empty = xds_string_pb2.StringMatcher(
        safe_regex=xds_regex_pb2.RegexMatcher(
            google_re2=xds_regex_pb2.RegexMatcher.GoogleRE2(), regex=_NON_EMPTY
        )
    )
    return skip_unless(request_header_is(header, non_empty))

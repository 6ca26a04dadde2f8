"""Envoy Gateway's Backend, refused at the door as upstream's CRD refuses it, and where Envoy would NACK it.

The property tests found an endpoint address Envoy refuses as malformed; these pin the checks that stop it.
"""

from __future__ import annotations

import pytest

from controlplane.resources import Severity, load_text
from controlplane.resources.fieldtypes import DNS_SUBDOMAIN


def _errors(endpoint: str) -> list[tuple[str, str]]:
    text = (
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: n}\n"
        f"spec:\n  endpoints: [{endpoint}]\n"
    )
    return [(p.field_path, p.message) for p in load_text(text).problems if p.severity is Severity.ERROR]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "fe80::1", "2001:db8:0:0:0:0:0:1"])
def test_ip_addresses_are_taken(address: str) -> None:
    assert _errors(f"{{ip: {{address: '{address}', port: 8000}}}}") == []


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("1:2", "must be an IPv4 or IPv6 address"),  # upstream's pattern takes it; Envoy does not
        ("10.0.0.256", "must match the pattern"),
        ("localhost", "must match the pattern"),
        ("xx", "must be at least 3 characters long"),
        ("1" * 46, "must be at most 45 characters long"),
    ],
)
def test_what_is_no_ip_address_is_refused_with_its_field(address: str, message: str) -> None:
    ((path, found),) = _errors(f"{{ip: {{address: '{address}', port: 8000}}}}")
    assert path == "spec.endpoints[0].ip.address"
    assert found.startswith(message)


def test_hostnames_and_socket_paths_have_upstreams_limits() -> None:
    assert _errors("{fqdn: {hostname: api.openai.com, port: 443}}") == []
    assert _errors("{unix: {path: /run/model.sock}}") == []
    assert _errors("{fqdn: {hostname: Not_A_Host, port: 443}}") == [
        ("spec.endpoints[0].fqdn.hostname", f"must match the pattern ^{DNS_SUBDOMAIN}$")
    ]
    assert _errors("{unix: {path: /" + "s" * 108 + "}}") == [
        ("spec.endpoints[0].unix.path", "must be at most 108 characters long")
    ]

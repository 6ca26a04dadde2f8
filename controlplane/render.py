"""Envoy resources and statuses as plain data, for ``translate`` output and the admin status page.

Messages use Envoy's own proto3 JSON form (snake_case field names, ``@type`` on every Any), the same form
Envoy's config dump prints. Credential values (SDS secrets, the AWS keys inside a hop's signing filter) are
replaced by a marker: this output is meant to be read, pasted into issues and diffed, and must never carry a
key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from controlplane.gatewayapi import ObjectStatus
from controlplane.redaction import REDACTED
from controlplane.resources.problems import ObjectKey
from controlplane.xds.translator import EnvoyResources

_INLINE_KEYS = "inline_credential"
"""Where a message carries AWS keys in its own config (``filters.aws_signing``): every value is redacted."""


def envoy_document(envoy: EnvoyResources) -> dict[str, list[dict[str, Any]]]:
    return {
        "listeners": [_without_inline_keys(_plain(message)) for message in envoy.listeners],
        "routes": [_plain(message) for message in envoy.routes],
        "clusters": [_plain(message) for message in envoy.clusters],
        "endpoints": [_plain(message) for message in envoy.endpoints],
        "secrets": [_redacted_secret(message) for message in envoy.secrets],
    }


def status_document(statuses: dict[ObjectKey, ObjectStatus]) -> list[dict[str, Any]]:
    return list(status_entries(statuses))


def status_entries(statuses: Mapping[ObjectKey, ObjectStatus]) -> Iterator[dict[str, Any]]:
    """``status_document`` one object at a time (the order is fixed now: ``statuses`` may be replaced while
    they are written), for a page of thousands of objects that need not all be built at once."""
    ordered = sorted(statuses.items())
    return (_object_status(key, status) for key, status in ordered)


def _object_status(key: ObjectKey, status: ObjectStatus) -> dict[str, Any]:
    document: dict[str, Any] = {
        "group": key.group,
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "conditions": [
            {
                "type": condition.type,
                "status": "True" if condition.status else "False",
                "reason": condition.reason,
                "message": condition.message,
            }
            for condition in status.conditions
        ],
    }
    if status.parents:
        document["parents"] = [f"{parent.namespace}/{parent.name}" for parent in status.parents]
    return document


def _plain(message: Message) -> dict[str, Any]:
    # A JSON round trip gives plain, dumpable data (MessageToDict leaves OrderedDicts for Any fields);
    # sorted keys because Struct maps (JSON body formats) iterate in a per-process hash order.
    plain: dict[str, Any] = json.loads(
        json_format.MessageToJson(message, preserving_proto_field_name=True, sort_keys=True)
    )
    return plain


def _without_inline_keys(plain: Any) -> Any:
    """``plain`` with the values of every ``inline_credential`` it holds, at any depth, redacted."""
    if isinstance(plain, list):
        return [_without_inline_keys(item) for item in plain]
    if not isinstance(plain, dict):
        return plain
    return {
        key: {name: REDACTED for name in value}
        if key == _INLINE_KEYS and isinstance(value, dict)
        else _without_inline_keys(value)
        for key, value in plain.items()
    }


def _redacted_secret(message: Message) -> dict[str, Any]:
    plain = _plain(message)
    generic = plain.get("generic_secret")
    if generic is not None:
        generic["secret"] = {"inline_string": REDACTED}
    return plain

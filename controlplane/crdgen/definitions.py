"""Our CustomResourceDefinitions: the kinds whose status we own, as Envoy AI Gateway declares them.

Names, plural, scope and versions are upstream's (v1alpha1 and v1beta1 served, v1beta1 stored, v1alpha1
deprecated with upstream's warning; no short names, as upstream has none), so a user's manifests and
``kubectl`` habits carry over unchanged. The schema of both versions is the one our model reads (upstream's
two versions share one schema too), the status is ``KubeStatus``, and ``kubectl get`` shows whether the
control plane accepted the object. Facts: envoyproxy/ai-gateway ``manifests/charts/ai-gateway-crds-helm``
at v1.0.0 (the newest release the Go module proxy serves; v1.1 declares the same names and versions).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controlplane.crdgen.schema import JsonSchema, SchemaError, structural_schema
from controlplane.resources.meta import Resource, api_version
from controlplane.resources.status import KubeStatus
from controlplane.sources.kubernetes.kinds import WATCHED_KINDS, WatchedKind

STORAGE_VERSION = "v1beta1"
DEPRECATED_VERSIONS = frozenset({"v1alpha1"})

PRINTER_COLUMNS = (
    {
        "name": "Accepted",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Accepted")].status',
        "description": "Whether the control plane translated the object (see its conditions for why not)",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

_API_VERSION = {
    "type": "string",
    "description": "The versioned schema of this representation of an object (group/version).",
}
_KIND = {"type": "string", "description": "The REST resource this object represents, in CamelCase."}


def our_kinds() -> tuple[WatchedKind, ...]:
    """The kinds we define a CRD for: the ones whose status the control plane writes."""
    return tuple(kind for kind in WATCHED_KINDS if kind.status_is_ours)


def crd_file_name(kind: WatchedKind) -> str:
    """``aigateway.envoyproxy.io_aigatewayroutes.yaml``, as controller-gen names them."""
    return f"{kind.group}_{kind.plural}.yaml"


def custom_resource_definition(kind: WatchedKind) -> dict[str, Any]:
    """The CRD of ``kind``, ready to be written as YAML."""
    model = kind.model
    schema = object_schema(model)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{kind.group}"},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [_version(kind, version, schema) for version in model.api_versions],
        },
    }


def object_schema(model: type[Resource]) -> JsonSchema:
    """The whole object's schema: ``spec`` from the model, ``status`` from ``KubeStatus``."""
    spec_model = model.model_fields["spec"].annotation
    if not (isinstance(spec_model, type) and issubclass(spec_model, BaseModel)):
        raise SchemaError(f"{model.__name__}.spec: not a model")
    spec = structural_schema(spec_model)
    out: JsonSchema = {
        "type": "object",
        "properties": {
            "apiVersion": _API_VERSION,
            "kind": _KIND,
            "metadata": {"type": "object"},
            "spec": spec,
            "status": structural_schema(KubeStatus),
        },
        "required": ["spec"],
    }
    if model.__doc__:
        out["description"] = model.__doc__.strip()
    return out


def _version(kind: WatchedKind, version: str, schema: JsonSchema) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": version == STORAGE_VERSION,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": list(PRINTER_COLUMNS),
    }
    if version in DEPRECATED_VERSIONS:
        out["deprecated"] = True
        current = api_version(kind.group, STORAGE_VERSION)
        out["deprecationWarning"] = f"{api_version(kind.group, version)} is deprecated; use {current} instead"
    return out

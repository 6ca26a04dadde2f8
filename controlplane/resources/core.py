"""Kubernetes core kinds the translator reads: Service and EndpointSlice (a backend reached through a
Service), Secret (API keys), ConfigMap (CA bundles) and Pod (InferencePool members).

These schemas belong to Kubernetes and a dump from a cluster carries many fields we never read, so the
nested parts use ``LooseModel`` (undeclared fields ignored). Secret values are ``SecretStr`` from the moment
they are parsed: no repr, str, dump or problem message can show them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from controlplane.resources.fieldtypes import IntOrString
from controlplane.resources.gateway_api import PortNumber
from controlplane.resources.meta import Loose, LooseModel, Model, Resource, Tolerated

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# --- Service and EndpointSlice ------------------------------------------------------------------------


class ServicePort(Model):
    name: str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None
    port: PortNumber
    target_port: IntOrString | None = None
    node_port: int | None = None

    @property
    def effective_target_port(self) -> int | str:
        """``targetPort`` defaults to ``port`` (Kubernetes semantics); a string names a container port."""
        return self.port if self.target_port is None else self.target_port


class ServiceSpec(LooseModel):
    type: str = "ClusterIP"
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    external_name: str | None = None
    """``type: ExternalName``: the DNS name the Service stands for."""


class Service(Resource):
    api_group = ""
    api_kind = "Service"
    api_versions = ("v1",)

    spec: ServiceSpec = Field(default_factory=ServiceSpec)

    def port(self, number: int) -> ServicePort | None:
        """The port entry for a Service port number (what a backendRef's ``port`` names)."""
        return next((entry for entry in self.spec.ports if entry.port == number), None)


class EndpointConditions(LooseModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class EndpointSliceEndpoint(LooseModel):
    addresses: list[str] = Field(min_length=1)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    target_ref: Loose | None = None
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None

    @property
    def ready(self) -> bool:
        """Kubernetes reads an unset ``ready`` as true."""
        return self.conditions.ready is not False


class EndpointPort(LooseModel):
    name: str | None = None
    port: int | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


class EndpointSlice(Resource):
    api_group = "discovery.k8s.io"
    api_kind = "EndpointSlice"
    api_versions = ("v1",)

    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[EndpointSliceEndpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)

    @property
    def service_name(self) -> str | None:
        """The Service this slice belongs to (its ``kubernetes.io/service-name`` label)."""
        return self.metadata.labels.get(SERVICE_NAME_LABEL)


# --- Secret and ConfigMap -----------------------------------------------------------------------------


def _decode_secret_data(value: Any) -> Any:
    # Error messages here never include the value: it is a secret, well formed or not.
    if not isinstance(value, str):
        raise PydanticCustomError("secret_data_type", "must be a base64-encoded string")
    try:
        return base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise PydanticCustomError("secret_data_base64", "is not valid base64-encoded UTF-8 text") from None


Base64SecretText = Annotated[SecretStr, BeforeValidator(_decode_secret_data)]


class Secret(Resource):
    api_group = ""
    api_kind = "Secret"
    api_versions = ("v1",)

    type: str = "Opaque"
    data: dict[str, Base64SecretText] = Field(default_factory=dict)
    string_data: dict[str, SecretStr] = Field(default_factory=dict)
    immutable: bool | None = None

    def value(self, key: str) -> SecretStr | None:
        """The decoded value under ``key``; ``stringData`` wins over ``data`` (Kubernetes merges them so)."""
        found = self.string_data.get(key)
        return found if found is not None else self.data.get(key)

    @property
    def keys(self) -> list[str]:
        return sorted(set(self.data) | set(self.string_data))


class ConfigMap(Resource):
    api_group = ""
    api_kind = "ConfigMap"
    api_versions = ("v1",)

    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None


# --- Pod ----------------------------------------------------------------------------------------------


class PodCondition(LooseModel):
    type: str
    status: str


class PodIP(LooseModel):
    ip: str


class PodStatus(LooseModel):
    phase: str | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] = Field(default_factory=list, alias="podIPs")
    conditions: list[PodCondition] = Field(default_factory=list)


class Pod(Resource):
    """Only what InferencePool selection needs: labels (in metadata), IP and readiness."""

    api_group = ""
    api_kind = "Pod"
    api_versions = ("v1",)

    spec: Tolerated
    status: PodStatus = Field(default_factory=PodStatus)

    @property
    def ip(self) -> str | None:
        return self.status.pod_ip

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.status.conditions)

"""Gateway API Inference Extension kinds: InferencePool in both shapes users have, and the model kinds we
recognise without translating.

``inference.networking.x-k8s.io/v1alpha2`` (selector map, ``targetPortNumber``, inline ``extensionRef``) and
``inference.networking.k8s.io/v1`` (``selector.matchLabels``, ``targetPorts``, ``endpointPickerRef``) say
the same things differently; both expose one normalised view (``match_labels``, ``target_ports``,
``endpoint_picker``, ``app_protocol``) so the translator never branches on the version.
Facts: kubernetes-sigs/gateway-api-inference-extension ``api/v1`` (after v1.6.0) and ``api/v1alpha2`` at
v0.3.0 / ``apix/v1alpha2`` at v1.0.0.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from controlplane.resources.gateway_api import PortNumber
from controlplane.resources.groups import INFERENCE_GROUP, INFERENCE_POOL_KIND, INFERENCE_X_GROUP
from controlplane.resources.meta import LooseResource, Model, Resource

DEFAULT_EPP_PORT = 9002
"""The endpoint picker's port when the reference names none (AI Gateway's and GIE's convention)."""

FailureMode = Literal["FailOpen", "FailClose"]
AppProtocol = Literal["http", "kubernetes.io/h2c"]


@dataclass(frozen=True, slots=True)
class EndpointPicker:
    """Where the pool's endpoint picker (EPP) runs, whichever version described it."""

    group: str
    kind: str
    name: str
    port: int
    failure_mode: FailureMode


class InferencePoolBase(Resource):
    """What both InferencePool versions mean. Subclasses only translate their own shape into this view."""

    endpoint_picker_path: ClassVar[str]
    """Where the manifest names its endpoint picker (for problems and conditions)."""

    @property
    @abstractmethod
    def match_labels(self) -> dict[str, str]:
        """Labels an AIServiceBackend or Pod must all carry to belong to the pool."""

    @property
    @abstractmethod
    def target_ports(self) -> list[int]:
        """Ports on the selected Pods that serve the model; empty when the manifest gives none."""

    @property
    @abstractmethod
    def endpoint_picker(self) -> EndpointPicker | None:
        """The endpoint picker, or None when the pool has none (allowed by v1 after v1.0)."""

    @property
    def app_protocol(self) -> AppProtocol:
        return "http"

    def selects(self, namespace: str, labels: dict[str, str]) -> bool:
        """Whether an object (AIServiceBackend or Pod) in ``namespace`` with ``labels`` belongs to the pool.

        An empty selector selects nothing: a pool must say what it bundles."""
        selector = self.match_labels
        return (
            namespace == self.namespace
            and bool(selector)
            and all(labels.get(key) == value for key, value in selector.items())
        )


# --- v1 (inference.networking.k8s.io) -----------------------------------------------------------------


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)


class PortRef(Model):
    number: PortNumber


class EndpointPickerRef(Model):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1)
    port: PortRef | None = None
    failure_mode: FailureMode = "FailClose"


class InferencePoolSpec(Model):
    selector: LabelSelector
    target_ports: list[PortRef] = Field(min_length=1)
    app_protocol: AppProtocol = "http"
    endpoint_picker_ref: EndpointPickerRef | None = None

    @field_validator("target_ports")
    @classmethod
    def _unique_ports(cls, value: list[PortRef]) -> list[PortRef]:
        numbers = [port.number for port in value]
        if len(set(numbers)) != len(numbers):
            raise PydanticCustomError("duplicate_port", "port numbers must be unique")
        return value


class InferencePool(InferencePoolBase):
    api_group = INFERENCE_GROUP
    api_kind = INFERENCE_POOL_KIND
    api_versions = ("v1",)
    endpoint_picker_path = "spec.endpointPickerRef"

    spec: InferencePoolSpec

    @property
    def match_labels(self) -> dict[str, str]:
        return dict(self.spec.selector.match_labels)

    @property
    def target_ports(self) -> list[int]:
        return [port.number for port in self.spec.target_ports]

    @property
    def endpoint_picker(self) -> EndpointPicker | None:
        ref = self.spec.endpoint_picker_ref
        if ref is None:
            return None
        port = ref.port.number if ref.port is not None else DEFAULT_EPP_PORT
        return EndpointPicker(ref.group, ref.kind, ref.name, port, ref.failure_mode)

    @property
    def app_protocol(self) -> AppProtocol:
        return self.spec.app_protocol


# --- v1alpha2 (inference.networking.x-k8s.io) ---------------------------------------------------------


class ExtensionRef(Model):
    group: str = ""
    kind: str = "Service"
    name: str = Field(min_length=1)
    port_number: PortNumber | None = None
    failure_mode: FailureMode = "FailClose"


class InferencePoolV1Alpha2Spec(Model):
    selector: dict[str, str]
    # Required upstream, optional here: the AI Gateway docs' example (seed 002) omits it, because a pool that
    # selects AIServiceBackends takes its ports from them. The translator reports it when Pods need it.
    target_port_number: PortNumber | None = None
    extension_ref: ExtensionRef | None = None


class InferencePoolV1Alpha2(InferencePoolBase):
    api_group = INFERENCE_X_GROUP
    api_kind = INFERENCE_POOL_KIND
    api_versions = ("v1alpha2",)
    endpoint_picker_path = "spec.extensionRef"

    spec: InferencePoolV1Alpha2Spec

    @property
    def match_labels(self) -> dict[str, str]:
        return dict(self.spec.selector)

    @property
    def target_ports(self) -> list[int]:
        port = self.spec.target_port_number
        return [] if port is None else [port]

    @property
    def endpoint_picker(self) -> EndpointPicker | None:
        ref = self.spec.extension_ref
        if ref is None:
            return None
        port = ref.port_number if ref.port_number is not None else DEFAULT_EPP_PORT
        return EndpointPicker(ref.group, ref.kind, ref.name, port, ref.failure_mode)


# --- Recognised, not translated -----------------------------------------------------------------------


class InferenceModel(LooseResource):
    api_group = INFERENCE_X_GROUP
    api_kind = "InferenceModel"
    api_versions = ("v1alpha2",)


class InferenceObjective(LooseResource):
    api_group = INFERENCE_X_GROUP
    api_kind = "InferenceObjective"
    api_versions = ("v1alpha2",)


class InferenceModelRewrite(LooseResource):
    api_group = INFERENCE_X_GROUP
    api_kind = "InferenceModelRewrite"
    api_versions = ("v1alpha2",)

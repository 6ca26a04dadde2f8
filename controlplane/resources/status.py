"""The ``status`` our kinds carry in a cluster: Kubernetes conditions (``metav1.Condition``), as upstream's.

The Kubernetes source writes it (``controlplane.sources.kubernetes.status``) and our CRDs' status schema is
generated from it (``controlplane.crdgen``), so the limits the API server checks on a write are these.
Facts: k8s.io/apimachinery ``pkg/apis/meta/v1/types.go`` (Condition).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from controlplane.resources.meta import Model

MAX_CONDITION_MESSAGE = 32768
"""metav1.Condition caps ``message`` at this length; the API server refuses longer ones."""


class KubeCondition(Model):
    """One aspect of the object's state: Accepted, ResolvedRefs or Warnings."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    """The ``metadata.generation`` this verdict is about."""
    last_transition_time: datetime
    """When ``status`` last changed."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why, in one CamelCase word."""
    message: str = Field(max_length=MAX_CONDITION_MESSAGE)
    """Why, for people: names the field and the reference at fault."""


class KubeStatus(Model):
    """What the control plane concluded about the object, written by the replica that leads."""

    conditions: list[KubeCondition] = Field(default_factory=list)

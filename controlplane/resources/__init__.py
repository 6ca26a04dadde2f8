"""Typed models of the manifests users give us, and the loader that turns YAML into them.

The rest of the control plane consumes only what this package exports: ``load_paths``/``load_text``
produce a ``LoadResult`` (accepted objects plus ``Problem``s), and a ``ResourceSet`` is the translator's
input. Submodules hold the models per API group.
"""

from controlplane.resources.loader import Loaded, LoadResult, load_paths, load_text, parse_document
from controlplane.resources.meta import Resource
from controlplane.resources.notes import deprecated_fields, noted_fields, unimplemented_fields
from controlplane.resources.problems import ObjectKey, Problem, Severity
from controlplane.resources.resource_set import ResourceSet

__all__ = [
    "LoadResult",
    "Loaded",
    "ObjectKey",
    "Problem",
    "Resource",
    "ResourceSet",
    "Severity",
    "deprecated_fields",
    "load_paths",
    "load_text",
    "noted_fields",
    "parse_document",
    "unimplemented_fields",
]

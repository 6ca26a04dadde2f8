"""Typed models of the manifests users give us, and the parser that turns YAML into them.

The rest of the control plane consumes only what this package exports: ``load_text``/``parse_document``
produce a ``LoadResult`` (accepted objects plus ``Problem``s), and a ``ResourceSet`` is the pipeline's
input. Submodules hold the models per API group; reading files is ``controlplane.sources.file_reading``' job.
"""

from controlplane.resources.meta import Resource
from controlplane.resources.notes import deprecated_fields, noted_fields, unimplemented_fields
from controlplane.resources.parse import Loaded, LoadResult, load_text, parse_document
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
    "load_text",
    "noted_fields",
    "parse_document",
    "unimplemented_fields",
]

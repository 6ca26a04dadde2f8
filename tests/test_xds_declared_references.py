"""The references the translator declares for its many or large resources (clusters, load assignments, route
configurations) stand in for walking each message (``XdsResource.build``): for every golden configuration
they must be exactly what the walk finds, or a push would be ordered wrong or a proxy would warm on the wrong
resources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from controlplane import ir
from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.sources.file_reading import load_paths
from controlplane.xds.resource import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    SECRET,
    References,
    dependencies,
    warming_dependencies,
)
from controlplane.xds.translator import fragments
from tests.test_translate_golden import EXAMPLES, TRANSLATE_CASES, XDS_CASES


def _infra(case: Path) -> ir.Infra:
    if case in XDS_CASES:
        return TypeAdapter(ir.Infra).validate_python(yaml.safe_load(case.read_text(encoding="utf-8")))
    loaded = load_paths([case])
    options = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
    return build_ir(loaded.resource_set(), options=options).infra


def _declared_and_walked(infra: ir.Infra) -> list[tuple[References, References]]:
    pairs = []
    for type_url, translate, declare, nodes in fragments(infra):
        if declare is None:
            continue
        for node in nodes:
            message = translate(node)
            walked = References(
                dependencies=frozenset(dependencies(type_url, message)),
                warming=frozenset(warming_dependencies(type_url, message)),
            )
            pairs.append((declare(node), walked))
    return pairs


CASES = [*EXAMPLES, *TRANSLATE_CASES, *XDS_CASES]


@pytest.mark.parametrize("case", CASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_declared_references_are_what_the_walk_finds(case: Path) -> None:
    for declared, walked in _declared_and_walked(_infra(case)):
        assert declared == walked


def test_the_goldens_declare_every_kind_of_reference() -> None:
    """Otherwise the comparison above would prove little: the goldens hold EDS clusters, CA bundles over SDS,
    hop listeners as hosts and routes to clusters."""
    declared = {
        key.type_url
        for case in CASES
        for references, _ in _declared_and_walked(_infra(case))
        for key in references.dependencies | references.warming
    }
    assert declared == {CLUSTER, ENDPOINT, SECRET, LISTENER}

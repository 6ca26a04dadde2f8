"""Golden tests at both seams: manifests -> Envoy resources + statuses, and IR -> Envoy resources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from controlplane import ir
from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import translate
from controlplane.render import envoy_document, status_document
from controlplane.resources.problems import sorted_problems
from controlplane.sources.file_reading import load_paths
from controlplane.xds.translator import build_xds
from tests.golden import check_golden

ROOT = Path(__file__).parent.parent
TESTDATA = Path(__file__).parent / "testdata"
EXAMPLES = sorted(path for path in (ROOT / "examples").iterdir() if path.is_dir())
TRANSLATE_CASES = sorted((TESTDATA / "translate").glob("*.in.yaml"))
XDS_CASES = sorted((TESTDATA / "xds").glob("*.in.yaml"))


def _translated(path: Path) -> dict[str, object]:
    loaded = load_paths([path])
    result = translate(
        loaded.resource_set(), options=TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
    )
    problems = sorted_problems([*loaded.problems, *result.problems])
    return {
        **envoy_document(result.envoy),
        "status": status_document(result.statuses),
        # Relative paths keep the files identical wherever the repository is checked out.
        "problems": [problem.format().replace(str(ROOT) + "/", "") for problem in problems],
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_translates_to_golden(example: Path) -> None:
    check_golden(_translated(example), TESTDATA / "examples" / f"{example.name}.out.yaml")


@pytest.mark.parametrize("case", TRANSLATE_CASES, ids=lambda path: path.name.removesuffix(".in.yaml"))
def test_manifests_translate_to_golden(case: Path) -> None:
    check_golden(_translated(case), case.with_name(case.name.replace(".in.yaml", ".out.yaml")))


@pytest.mark.parametrize("case", XDS_CASES, ids=lambda path: path.name.removesuffix(".in.yaml"))
def test_ir_builds_golden_envoy_resources(case: Path) -> None:
    infra = TypeAdapter(ir.Infra).validate_python(yaml.safe_load(case.read_text(encoding="utf-8")))
    check_golden(envoy_document(build_xds(infra)), case.with_name(case.name.replace(".in.yaml", ".out.yaml")))


def test_every_example_has_golden_output() -> None:
    assert EXAMPLES, "examples/ holds no example folders"
    assert {path.name for path in EXAMPLES} == {
        path.name.removesuffix(".out.yaml") for path in (TESTDATA / "examples").glob("*.out.yaml")
    }

"""The ``controlplane translate`` contract: document keys, problem lines on stderr, exit codes, redaction."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).parent.parent
TESTDATA = Path(__file__).parent / "testdata" / "translate"
PROBLEM_LINE = re.compile(r"^[^:]+:(\d+|-): [A-Za-z]+(/[^/ ]+){1,2}: \S+: .+$")


def _translate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", "translate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_examples_translate_cleanly_as_yaml() -> None:
    # Seed 002's example sends to an InferencePool.
    result = _translate("examples", "--enable-inference-extension")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert list(document) == ["listeners", "routes", "clusters", "endpoints", "secrets", "status"]
    assert all(
        condition["status"] == "True"
        for status in document["status"]
        for condition in status["conditions"]
        if condition["type"] == "Accepted"
    )


def test_without_the_inference_extension_a_rule_naming_a_pool_is_a_problem_the_rest_translates() -> None:
    result = _translate("examples/002-inference-pool")
    assert result.returncode == 1
    assert (
        "AIGatewayRoute/default/inference-extension-example: spec.rules[0].backendRefs[0].kind: "
        "the Inference Extension is off" in result.stderr
    ), result.stderr
    assert yaml.safe_load(result.stdout)["clusters"], "the other rules keep translating"


def test_invalid_input_exits_1_prints_problem_lines_and_the_accepted_rest() -> None:
    result = _translate(str(TESTDATA / "unsupported-and-invalid.in.yaml"), "-o", "json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["listeners"], "the accepted rest must still be printed"
    lines = result.stderr.strip().splitlines()
    assert lines
    for line in lines:
        assert PROBLEM_LINE.match(line), line
    assert any(
        ":4: AIServiceBackend/default/typo: spec.headerMutaton: unknown field" in line for line in lines
    ), lines
    assert any("Deployment/default/some-app" in line and "skipped" in line for line in lines), lines


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: x\n", encoding="utf-8")
    result = _translate(str(broken), str(ROOT / "examples" / "001-weighted-split"))
    assert result.returncode == 1
    assert f"{broken}:0: -: -: invalid YAML at line" in result.stderr
    assert yaml.safe_load(result.stdout)["clusters"], "other files keep translating"


def test_secret_values_never_appear_in_output() -> None:
    for case in ("examples", str(TESTDATA / "services-pods-legacy.in.yaml")):
        result = _translate(case, "-o", "json")
        output = result.stdout + result.stderr
        for value in ("sk-demo-not-a-real-key", "sk-secret-value"):
            assert value not in output
        assert "[redacted]" in result.stdout


def test_the_file_limits_are_flags(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n" + "#" * 100)
    result = _translate(str(big), "--max-file-bytes", "64")
    assert result.returncode == 1
    assert (
        f"{big}:-: -: -: cannot read file: {big.stat().st_size} bytes, over the limit of 64" in result.stderr
    )
    result = _translate("examples", "--max-objects", "3")
    assert result.returncode == 1
    assert "objects, over the limit of 3 (--max-objects): none of this load is used" in result.stderr
    assert yaml.safe_load(result.stdout)["clusters"] == []

"""Golden-file comparison shared by the translator's seam tests.

Run pytest with ``--update-golden`` (or set ``UPDATE_GOLDEN=1``) to rewrite the expected files from the
current output, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def check_golden(actual: Any, expected_file: Path) -> None:
    text = yaml.safe_dump(actual, sort_keys=False, default_flow_style=False, width=120)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(text, encoding="utf-8")
        return
    assert expected_file.exists(), f"{expected_file} is missing: run pytest --update-golden to create it"
    assert text == expected_file.read_text(encoding="utf-8"), (
        f"{expected_file} differs from the translator's output; if the change is intended, "
        "regenerate with pytest --update-golden and review the diff"
    )

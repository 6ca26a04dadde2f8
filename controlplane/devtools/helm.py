"""The real ``helm`` binary (built by :mod:`controlplane.devtools.gotools`) run on the repository's chart.

The chart's claims (what it renders, what the API server accepts, what its values schema refuses) are
only worth anything from the real Helm, so tests drive it here. Helm's cache, configuration and data
folders are moved into a folder of the caller's, so a test run never reads or writes the user's own.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controlplane.devtools.gotools import REPO, GoTools

CHART = REPO / "helm" / "ai-xds-controlplane"


class HelmError(RuntimeError):
    """A helm command failed; the message has its output."""


class Helm:
    def __init__(self, *, tools: GoTools, home: Path, kubeconfig: Path | None = None) -> None:
        self._binary = tools.binary("helm")
        self._home = home
        self._kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self._home / "cache"),
            "HELM_CONFIG_HOME": str(self._home / "config"),
            "HELM_DATA_HOME": str(self._home / "data"),
        }
        if self._kubeconfig is not None:
            env["KUBECONFIG"] = str(self._kubeconfig)
        result = subprocess.run(
            [str(self._binary), *args], capture_output=True, text=True, env=env, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
        return result

    def template(self, *args: str, release: str = "rel", namespace: str = "cp") -> list[dict[str, Any]]:
        """The chart rendered with ``args`` (``--set``, ``--include-crds``, ...), one dict per object."""
        rendered = self.run("template", release, str(CHART), "--namespace", namespace, *args).stdout
        return list(documents(rendered))


def documents(text: str) -> Iterator[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML text."""
    for document in yaml.safe_load_all(text):
        if document:
            yield document

"""What the resource models' tests share: the located errors of loading one manifest.

Each error is its field path and message, so a test can state exactly which field is refused and why.
"""

from __future__ import annotations

from controlplane.resources import Severity, load_text


def load_errors(text: str) -> list[tuple[str, str]]:
    """(field path, message) of every error ``load_text`` finds in `text`, in its order."""
    return [(p.field_path, p.message) for p in load_text(text).problems if p.severity is Severity.ERROR]

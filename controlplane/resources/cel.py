"""CEL rules (``x-kubernetes-validations``) for our CRDs, declared on the model next to the Python check.

Where upstream's CRDs enforce a rule across fields with CEL, the model enforces the same rule with a
pydantic validator (that is what the file source runs) and declares the CEL twin here, so the generated CRD
(``controlplane.crdgen``) makes the API server refuse the same objects. The two are kept in step by the
cases in ``tests/crd_cases.py``, each refused by both.
"""

from __future__ import annotations

from pydantic.config import JsonDict

X_VALIDATIONS = "x-kubernetes-validations"


def cel(rule: str, message: str) -> JsonDict:
    """One rule; ``self`` is the object (or list) the rule is declared on."""
    return {"rule": rule, "message": message}


def x_validations(*rules: JsonDict) -> JsonDict:
    """The ``json_schema_extra`` declaring ``rules`` on a model (``ConfigDict``) or a field (``Field``)."""
    return {X_VALIDATIONS: list(rules)}

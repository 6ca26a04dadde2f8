"""BackendSecurityPolicy manifests for the tests of which policy applies to which AIServiceBackend.

One home for the YAML both the policy-map property test and the memo's policy tests write.
"""

from __future__ import annotations


def api_key_policy(name: str, *, namespace: str, targets: list[str] | tuple[str, ...], secret: str) -> str:
    """An APIKey BackendSecurityPolicy ``name`` targeting the AIServiceBackends ``targets``, its key in the
    Secret ``secret``."""
    refs = ", ".join(
        f"{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: {target}}}" for target in targets
    )
    return f"""apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  targetRefs: [{refs}]
  type: APIKey
  apiKey: {{secretRef: {{name: {secret}}}}}
"""

"""How a translation's reads reach ``gatewayapi.memo``: the keys of reads that are not object look-ups, and
the view of a ``ResourceSet`` that reports every look-up and scan to the memo.

Apart from ``gatewayapi.memo``'s replay logic, so that each file stays about one thing: the code that reads
(``credentials``) and the memo, which marks these keys changed, share them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.resources.inference import InferencePoolBase
from controlplane.resources.meta import Resource
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet
from controlplane.tokens.state import TokenState

if TYPE_CHECKING:
    from controlplane.gatewayapi.memo import TranslationMemo

TOKENS_MODE = "tokens-mode"
"""Read with every token: whether tokens are minted (``serve``) or taken as minted (``translate``)."""


def policy_target(kind: str, namespace: str, name: str) -> tuple[str, str, str, str]:
    """What a read of which BackendSecurityPolicy applies to the target ``kind`` ``namespace``/``name`` is
    recorded as (the group is left out: a policy naming an InferencePool applies to either version)."""
    return ("policy target", kind, namespace, name)


def token_key(policy: ObjectKey) -> tuple[str, ObjectKey]:
    """What a read of ``policy``'s access token is recorded as."""
    return ("token", policy)


class RecordingResourceSet(ResourceSet):
    """The same objects as ``resources``, telling ``memo`` about every look-up and scan."""

    def __init__(self, resources: ResourceSet, *, memo: TranslationMemo) -> None:
        super().__init__()
        self._index = resources._index
        self._by_class = resources._by_class
        self._tokens = resources._tokens
        self._memo = memo

    def token(self, policy: ObjectKey) -> TokenState | None:
        self._memo.read_key(token_key(policy))
        self._memo.read_key(TOKENS_MODE)
        return super().token(policy)

    def get(self, key: ObjectKey) -> Resource | None:
        self._memo.read_key(key)
        return super().get(key)

    def of_type(self, model: type[Any]) -> list[Any]:
        self._memo.read_kind(model)
        return super().of_type(model)

    def uses_all(self, model: type[Resource]) -> None:
        self._memo.read_kind(model)

    def by_kind(self, kind: str, *, group: str | None = None) -> list[Resource]:
        self._memo.read_kind(Resource)
        return super().by_kind(kind, group=group)

    def inference_pools(self) -> list[InferencePoolBase]:
        self._memo.read_kind(InferencePoolBase)
        return super().inference_pools()

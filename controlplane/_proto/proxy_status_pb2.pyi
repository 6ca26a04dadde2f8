from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListProxiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProxiesResponse(_message.Message):
    __slots__ = ("proxies",)
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    proxies: _containers.RepeatedCompositeFieldContainer[ProxyStatus]
    def __init__(self, proxies: _Optional[_Iterable[_Union[ProxyStatus, _Mapping]]] = ...) -> None: ...

class ProxyStatus(_message.Message):
    __slots__ = ("node_id", "node_cluster", "mode", "group", "stream_id", "connected_seconds", "types")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_cluster: str
    mode: str
    group: str
    stream_id: int
    connected_seconds: float
    types: _containers.RepeatedCompositeFieldContainer[TypeStatus]
    def __init__(self, node_id: _Optional[str] = ..., node_cluster: _Optional[str] = ..., mode: _Optional[str] = ..., group: _Optional[str] = ..., stream_id: _Optional[int] = ..., connected_seconds: _Optional[float] = ..., types: _Optional[_Iterable[_Union[TypeStatus, _Mapping]]] = ...) -> None: ...

class TypeStatus(_message.Message):
    __slots__ = ("type_url", "sync", "acked_version", "snapshot_version", "acked_resources", "nacked_version", "nack_message")
    class Sync(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SYNC_UNSPECIFIED: _ClassVar[TypeStatus.Sync]
        SYNCED: _ClassVar[TypeStatus.Sync]
        STALE: _ClassVar[TypeStatus.Sync]
        NACKED: _ClassVar[TypeStatus.Sync]
        NOT_SENT: _ClassVar[TypeStatus.Sync]
    SYNC_UNSPECIFIED: TypeStatus.Sync
    SYNCED: TypeStatus.Sync
    STALE: TypeStatus.Sync
    NACKED: TypeStatus.Sync
    NOT_SENT: TypeStatus.Sync
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    ACKED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACKED_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NACKED_VERSION_FIELD_NUMBER: _ClassVar[int]
    NACK_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type_url: str
    sync: TypeStatus.Sync
    acked_version: str
    snapshot_version: str
    acked_resources: int
    nacked_version: str
    nack_message: str
    def __init__(self, type_url: _Optional[str] = ..., sync: _Optional[_Union[TypeStatus.Sync, str]] = ..., acked_version: _Optional[str] = ..., snapshot_version: _Optional[str] = ..., acked_resources: _Optional[int] = ..., nacked_version: _Optional[str] = ..., nack_message: _Optional[str] = ...) -> None: ...

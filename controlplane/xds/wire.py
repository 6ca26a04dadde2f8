"""A message's bytes assembled from serialised pieces, as the protobuf wire format allows.

A message serialises as the encodings of its set fields in field-number order, and a repeated message field
as one ``tag, length, bytes`` record per element. So a large message whose bulk is one repeated field (a
route configuration's virtual hosts, a virtual host's routes) can be serialised without ever being built
whole: the rest of it (its *shell*) is serialised alone, and the elements' records, each serialised on its
own and kept while its input is unchanged, are inserted where the field's number puts them. The result is
the very bytes ``SerializeToString`` gives for the whole message (tests/test_route_bytes.py holds the two
equal), without the one C call that holds the GIL for milliseconds at thousands of elements. The xDS server
frames discovery responses from serialised resources the same way (``server/reply.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

_LENGTH_DELIMITED = 2
_VARINT, _FIXED64, _FIXED32 = 0, 1, 5


def length_delimited(field_number: int, data: bytes) -> bytes:
    """``data`` as one record of the length-delimited field ``field_number`` (an element of a repeated
    message field)."""
    return b"".join((varint(field_number << 3 | _LENGTH_DELIMITED), varint(len(data)), data))


def with_repeated(shell: bytes, field_number: int, records: Sequence[bytes]) -> bytes:
    """The message whose other fields serialise as ``shell`` with ``records`` (``length_delimited``, in
    order) as its field ``field_number``, which ``shell`` must not hold."""
    at = _end_of_fields_before(shell, field_number)
    return b"".join((shell[:at], *records, shell[at:]))


def varint(value: int) -> bytes:
    """Protobuf's base-128 encoding of a non-negative integer, least significant group first."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it."""
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7


def _end_of_fields_before(shell: bytes, field_number: int) -> int:
    """The offset in ``shell`` where the first field numbered above ``field_number`` starts (its length
    when there is none): a shell is a few small fields, so walking them costs next to nothing."""
    offset = 0
    while offset < len(shell):
        tag, after_tag = _read_varint(shell, offset)
        number, wire_type = tag >> 3, tag & 7
        if number == field_number:
            raise ValueError(f"the shell already holds field {field_number}")
        if number > field_number:
            return offset
        if wire_type == _VARINT:
            _, offset = _read_varint(shell, after_tag)
        elif wire_type == _FIXED64:
            offset = after_tag + 8
        elif wire_type == _LENGTH_DELIMITED:
            length, start = _read_varint(shell, after_tag)
            offset = start + length
        elif wire_type == _FIXED32:
            offset = after_tag + 4
        else:
            raise ValueError(f"field {number} has wire type {wire_type} (a group), which proto3 never uses")
    return offset

"""Opaque global IDs: base64 of `<TypeName>:<key>`, the Relay convention."""

from __future__ import annotations

import base64
import binascii
import functools

import strawberry

from ..errors import BadUserInput

__all__ = ["decode_id", "encode_id", "input_key", "int_key"]


@functools.lru_cache(maxsize=16384)
def encode_id(type_name: str, key: object) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode())


def decode_id(global_id: str) -> tuple[str, str]:
    """Split a global ID into its type name and key, or raise BAD_USER_INPUT."""
    try:
        text = base64.urlsafe_b64decode(global_id.encode() + b"=" * (-len(global_id) % 4))
        type_name, _, key = text.decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"{global_id!r} is not a sessiongraph ID") from None
    if not type_name or not key:
        raise BadUserInput(f"{global_id!r} is not a sessiongraph ID")
    return type_name, key


def int_key(key: str, type_name: str) -> int:
    # Canonical digits only: `+1` or ` 1` would be a second ID for the same object. No
    # upstream key has 19 digits, and int() refuses over 4,300.
    canonical = key.isascii() and key.isdigit() and (len(key) == 1 or key[0] != "0")
    if not canonical or len(key) > 18:
        raise BadUserInput(f"{key!r} is not a {type_name} key", field="id")
    return int(key)


def input_key(value: str, type_name: str) -> int:
    """An id in a mutation input: the upstream's integer (which `ID` takes as is) or the
    global ID of a `type_name`, the one a client's cache holds."""
    if value.isascii() and value.isdigit():
        return int_key(value, type_name)
    kind, key = decode_id(value)
    if kind != type_name:
        raise BadUserInput(f"{value!r} is the ID of a {kind}, not of a {type_name}")
    return int_key(key, type_name)

"""Opaque global IDs: base64 of `<TypeName>:<key>`, the Relay convention."""

from __future__ import annotations

import base64
import binascii
import functools

import strawberry

from ..errors import BadUserInput

__all__ = ["decode_id", "encode_id"]


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

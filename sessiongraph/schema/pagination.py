"""Cursor pagination shared by `<Type>Connection`s: `PageInfo` and position cursors."""

from __future__ import annotations

import base64
import binascii

import strawberry

from ..errors import BadUserInput

__all__ = ["PageInfo", "decode_cursor", "encode_cursor", "page_info", "page_window"]

_PREFIX = "position:"
_MAX_DIGITS = 18


@strawberry.type(description="Where this page lies in the whole list (Relay convention).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(position: int) -> str:
    """Opaque to clients; a 0-based position in the list as ordered and filtered."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    position = text.removeprefix(_PREFIX)
    # ASCII digits only (`²` is a digit to str.isdigit but not to int), and few of them.
    digits = position.isascii() and position.isdigit() and len(position) <= _MAX_DIGITS
    if not text.startswith(_PREFIX) or not digits:
        raise BadUserInput(f"{cursor!r} is not a cursor from this list", field="after")
    return int(position)


def page_window(
    first: int | None, after: str | None, *, default: int, maximum: int
) -> tuple[int, int]:
    """(offset, limit) for `first`/`after`, refusing sizes beyond `maximum`."""
    limit = default if first is None else first
    if limit < 0 or limit > maximum:
        raise BadUserInput(f"`first` must lie between 0 and {maximum}", field="first")
    offset = decode_cursor(after) + 1 if after is not None else 0
    return offset, limit


def page_info(offset: int, count: int, total: int) -> PageInfo:
    return PageInfo(
        has_next_page=offset + count < total,
        has_previous_page=offset > 0,
        start_cursor=encode_cursor(offset) if count else None,
        end_cursor=encode_cursor(offset + count - 1) if count else None,
    )

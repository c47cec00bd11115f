"""Per-request facts shared by middleware, the GraphQL view and logging, via context variables."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["RequestFacts", "current", "new_request_id", "start"]

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class RequestFacts:
    request_id: str
    operation: str | None = None
    outcome: str = "ok"
    # Objects fetched by id so far, over the request's batched operations (schema/limits.py).
    lookups: int = 0


_facts: ContextVar[RequestFacts | None] = ContextVar("sessiongraph_request", default=None)


def new_request_id(offered: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    if offered and _ACCEPTABLE_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def start(request_id: str) -> RequestFacts:
    facts = RequestFacts(request_id)
    _facts.set(facts)
    return facts


def current() -> RequestFacts | None:
    return _facts.get()

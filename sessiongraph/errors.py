"""The one exception hierarchy of sessiongraph; each error knows its GraphQL `extensions.code`.

SessionGraphError
├── BadUserInput              BAD_USER_INPUT
├── NotFound                  NOT_FOUND
├── Unauthenticated           UNAUTHENTICATED
├── Forbidden                 FORBIDDEN
├── QueryTooComplex           QUERY_TOO_COMPLEX
├── PersistedQueryNotFound    PERSISTED_QUERY_NOT_FOUND
├── PersistedQueryNotInList   PERSISTED_QUERY_NOT_IN_LIST
├── OperationResolutionFailure OPERATION_RESOLUTION_FAILURE
├── SubscriptionLimit         SUBSCRIPTION_LIMIT (extensions.reason)
└── UpstreamError             (extensions.upstream, extensions.status)
    ├── UpstreamNotConfigured UPSTREAM_NOT_CONFIGURED
    ├── UpstreamUnavailable   UPSTREAM_UNAVAILABLE
    ├── UpstreamTimeout       UPSTREAM_TIMEOUT
    ├── UpstreamRateLimited   UPSTREAM_RATE_LIMITED (extensions.retryAfter)
    │   └── UpstreamQuotaSpent    (the day's quota is spent; nothing was sent)
    ├── UpstreamAuthFailed    UPSTREAM_AUTH_FAILED
    └── UpstreamRejected      UPSTREAM_REJECTED
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadUserInput",
    "Forbidden",
    "NotFound",
    "OperationResolutionFailure",
    "PersistedQueryNotFound",
    "PersistedQueryNotInList",
    "QueryTooComplex",
    "SessionGraphError",
    "SubscriptionLimit",
    "Unauthenticated",
    "UpstreamAuthFailed",
    "UpstreamError",
    "UpstreamNotConfigured",
    "UpstreamQuotaSpent",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class SessionGraphError(Exception):
    """An error whose message is safe to show to clients."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = {key: value for key, value in extra.items() if value is not None}

    @property
    def extensions(self) -> dict[str, Any]:
        # graphql-core copies this onto the GraphQL error it wraps us in.
        return {"code": self.code, **self.extra}


class BadUserInput(SessionGraphError):
    code = "BAD_USER_INPUT"


class NotFound(SessionGraphError):
    code = "NOT_FOUND"


class PersistedQueryNotFound(SessionGraphError):
    """A hash-only request whose document this gateway does not hold (yet): the client
    resends it with the document (Apollo's APQ protocol)."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueryNotInList(SessionGraphError):
    code = "PERSISTED_QUERY_NOT_IN_LIST"


class OperationResolutionFailure(SessionGraphError):
    code = "OPERATION_RESOLUTION_FAILURE"


class SubscriptionLimit(SessionGraphError):
    """Too many subscriptions on a connection or in the process, or a subscriber too slow to
    keep up (`reason`: PER_CONNECTION, PER_PROCESS, SLOW_CONSUMER)."""

    code = "SUBSCRIPTION_LIMIT"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class Unauthenticated(SessionGraphError):
    code = "UNAUTHENTICATED"


class Forbidden(SessionGraphError):
    code = "FORBIDDEN"


class QueryTooComplex(SessionGraphError):
    code = "QUERY_TOO_COMPLEX"


class UpstreamError(SessionGraphError):
    """Something went wrong between us and an upstream API."""

    def __init__(
        self, upstream: str, message: str, *, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message, upstream=upstream, status=status, **extra)
        self.upstream = upstream
        self.status = status


class UpstreamNotConfigured(UpstreamError):
    code = "UPSTREAM_NOT_CONFIGURED"


class UpstreamUnavailable(UpstreamError):
    code = "UPSTREAM_UNAVAILABLE"


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"


class UpstreamRateLimited(UpstreamError):
    code = "UPSTREAM_RATE_LIMITED"

    def __init__(
        self,
        upstream: str,
        message: str,
        *,
        status: int | None = 429,
        retry_after: float | None,
        **extra: Any,
    ) -> None:
        super().__init__(upstream, message, status=status, retryAfter=retry_after, **extra)
        self.retry_after = retry_after


class UpstreamQuotaSpent(UpstreamRateLimited):
    """Refused by the gateway itself: the key's requests for the day are spent, so the
    request was never sent (no `status`; `resetsAt` says when sending resumes)."""

    def __init__(
        self, upstream: str, message: str, *, retry_after: float, resets_at: str, limit: int
    ) -> None:
        super().__init__(
            upstream,
            message,
            status=None,
            retry_after=retry_after,
            reason="DAILY_QUOTA",
            resetsAt=resets_at,
            limit=limit,
        )


class UpstreamAuthFailed(UpstreamError):
    code = "UPSTREAM_AUTH_FAILED"


class UpstreamRejected(UpstreamError):
    code = "UPSTREAM_REJECTED"

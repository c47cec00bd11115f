"""Optional OpenTelemetry tracing: a span per GraphQL operation and per upstream request.

Active when the `otel` extra is installed and SESSIONGRAPH_TRACING is true; the tracer
provider and exporter come from the OpenTelemetry SDK's usual setup (e.g. OTEL_* variables
with `opentelemetry-instrument`). No per-field spans: they cost more than they tell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["enable", "inject_trace_context", "span"]

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the `otel` extra is not installed
    trace = None  # type: ignore[assignment]

_enabled = False


def enable(on: bool) -> bool:
    """Turn tracing on if asked and possible; returns whether it is on."""
    global _enabled
    _enabled = on and trace is not None
    return _enabled


@contextlib.contextmanager
def span(name: str, *, client: bool = False, **attributes: Any) -> Iterator[Any]:
    """A span (SERVER for operations, CLIENT for upstream calls), or nothing when off."""
    if not _enabled:
        yield None
        return
    tracer = trace.get_tracer("sessiongraph")
    kind = SpanKind.CLIENT if client else SpanKind.SERVER
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def inject_trace_context(headers: dict[str, str]) -> None:
    """Adds W3C `traceparent`/`tracestate` for the current span to upstream request headers."""
    if _enabled:
        propagate.inject(headers)

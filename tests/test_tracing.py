"""OpenTelemetry: one span per operation, one per upstream request, trace context sent upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests._servers import LoopThread

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def recording_upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in OpenF1 that records request headers and knows one meeting."""
    seen: list[dict[str, str]] = []

    async def meetings(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response([{"meeting_key": 1, "meeting_name": "Traced Grand Prix"}])

    app = web.Application()
    app.router.add_get("/v1/meetings", meetings)
    thread = LoopThread("recorder")
    runner = web.AppRunner(app)
    thread.run(runner.setup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    thread.run(site.start)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    thread.run(runner.cleanup)
    thread.close()


def test_spans_and_propagation(
    make_gateway: Any, recording_upstream: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = recording_upstream
    gateway = make_gateway(tracing=True, openf1_url=url)
    EXPORTER.clear()
    result = gateway.query("query Traced { meeting(key: 1) { meetingName } }")
    assert result == {"data": {"meeting": {"meetingName": "Traced Grand Prix"}}}
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    operation, upstream = spans["graphql"], spans["openf1 GET"]
    assert operation.attributes is not None
    assert operation.attributes["graphql.operation.name"] == "Traced"
    assert upstream.parent is not None
    assert upstream.parent.span_id == operation.context.span_id
    trace_id = f"{operation.context.trace_id:032x}"
    assert seen[0]["traceparent"].split("-")[1] == trace_id
    assert len(spans) == 2  # no per-field spans


def test_off_by_default(make_gateway: Any, recording_upstream: tuple[str, Any]) -> None:
    url, seen = recording_upstream
    gateway = make_gateway(openf1_url=url)
    EXPORTER.clear()
    gateway.query("{ meeting(key: 1) { meetingName } }")
    assert EXPORTER.get_finished_spans() == ()
    assert "traceparent" not in seen[0]

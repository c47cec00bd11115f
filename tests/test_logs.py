"""JSON log lines: one object per line, with the request id of the request being served."""

from __future__ import annotations

import logging

import orjson

from sessiongraph import requestctx
from sessiongraph.logs import JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    entry.__dict__.update(extra)
    return entry


def test_lines_are_json_with_extras_and_the_request_id() -> None:
    requestctx.start("req-42")
    line = JsonFormatter().format(record("upstream request", upstream="openf1", status=200))
    entry = orjson.loads(line)
    assert entry["message"] == "upstream request"
    assert entry["request_id"] == "req-42"
    assert entry["upstream"] == "openf1"
    assert entry["status"] == 200
    assert "\n" not in line


def test_exceptions_are_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    entry = orjson.loads(line)
    assert "ValueError: boom" in entry["exception"]

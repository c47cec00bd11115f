"""Guidebook provider pieces without a network: timestamps, records, DRF errors, HTML, tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sessiongraph.auth import check_bearer, token_hash
from sessiongraph.errors import Forbidden, Unauthenticated
from sessiongraph.providers.guidebook import (
    FieldError,
    GuidebookSessionRecord,
    LocationAddress,
    LocationRecord,
    SessionQuery,
    field_errors,
    format_timestamp,
    parse_timestamp,
    to_record,
)
from sessiongraph.sanitize import sanitize_description


@pytest.mark.parametrize(
    "text",
    [
        "2017-09-18T22:13:25.766623+0000",
        "2017-09-18T22:13:25.766623+00:00",
        "2017-09-18T22:13:25.766623Z",
        "2017-09-18T22:13:25.766623",
    ],
)
def test_timestamps_with_or_without_the_offset_colon(text: str) -> None:
    assert parse_timestamp(text) == datetime(2017, 9, 18, 22, 13, 25, 766623, tzinfo=UTC)


def test_unreadable_timestamps_are_none() -> None:
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(1505772805) is None
    assert parse_timestamp(None) is None


def test_timestamps_are_sent_in_utc_with_an_offset() -> None:
    pacific = timezone(timedelta(hours=-7))
    assert format_timestamp(datetime(2027, 4, 20, 12, tzinfo=pacific)) == (
        "2027-04-20T19:00:00.000000+0000"
    )
    assert format_timestamp(datetime(2027, 4, 20, 12)) == "2027-04-20T12:00:00.000000+0000"


def test_records_tolerate_drift() -> None:
    row = {
        "id": 7,
        "guide": 1,
        "name": "Talk",
        "start_time": "2017-09-18T16:00:00.000000+0000",
        "schedule_tracks": [3, "x", 4],
        "rank": 2,
        "all_day": "false",
        "brand_new_field": {"ignored": True},
    }
    record = to_record(GuidebookSessionRecord, row)
    assert record is not None
    assert record.schedule_tracks == (3, 4)
    assert record.rank == 2.0
    assert record.all_day is None  # a string is not a boolean
    assert record.waitlist is None  # absent in older responses
    assert to_record(GuidebookSessionRecord, {"name": "no id"}) is None
    assert to_record(GuidebookSessionRecord, {"id": 1}) is None  # no guide
    location = to_record(LocationRecord, {"id": 2, "guide": 1, "address": {"city": "Portland"}})
    assert location is not None
    assert location.address == LocationAddress(city="Portland")


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            b'{"name": ["This field is required."], "non_field_errors": ["Bad."]}',
            [FieldError("name", "This field is required."), FieldError(None, "Bad.")],
        ),
        (b'{"detail": "Not found."}', [FieldError(None, "Not found.")]),
        (b'{"color": "Enter a valid hex color"}', [FieldError("color", "Enter a valid hex color")]),
        (
            b'{"address": {"city": ["Too long."]}}',
            [FieldError("address.city", "Too long.")],
        ),
        (b'["Something broke."]', [FieldError(None, "Something broke.")]),
        (
            b"<html>oops</html>",
            [FieldError(None, "Guidebook refused the request without saying why.")],
        ),
        (b"", [FieldError(None, "Guidebook refused the request without saying why.")]),
    ],
)
def test_drf_error_bodies(body: bytes, errors: list[FieldError]) -> None:
    assert field_errors(body) == errors


def test_session_query_string() -> None:
    query = SessionQuery(47, schedule_track=3, import_id="a b&c", ordering=("-end_time", "id"))
    assert query.query() == "guide=47&schedule_tracks=3&import_id=a%20b%26c&ordering=-end_time,id"


@pytest.mark.parametrize(
    ("html", "clean", "removed"),
    [
        ("<p>Hello <b>there</b><br/></p>", "<p>Hello <b>there</b><br></p>", False),
        ('<p onclick="x()">a</p>', "<p>a</p>", True),
        ("<script>alert(1)</script><p>a</p>", "<p>a</p>", True),
        ('<a href="javascript:alert(1)">x</a>', "<a>x</a>", True),
        (
            '<a href="https://x.org" rel="nofollow">x</a>',
            '<a href="https://x.org" rel="nofollow">x</a>',
            False,
        ),
        ('<img src="a.png">', "", True),
        ("<table><tr><td colspan=2>x</td></tr></table>", None, False),
        ("fish & chips", "fish &amp; chips", False),
    ],
)
def test_sanitizing(html: str, clean: str | None, removed: bool) -> None:
    result = sanitize_description(html)
    if clean is not None:
        assert result.html == clean
    assert result.removed is removed


def test_v1_1_keeps_span_colour_only() -> None:
    kept = sanitize_description('<span style="color: red">x</span>', span_style=True)
    assert (kept.html, kept.removed) == ('<span style="color:red">x</span>', False)
    trimmed = sanitize_description(
        '<span style="color: red; font-size: 40px">x</span>', span_style=True
    )
    assert (trimmed.html, trimmed.removed) == ('<span style="color:red">x</span>', True)
    assert sanitize_description('<span style="color: red">x</span>').removed is True


def test_bearer_tokens() -> None:
    hashes = [token_hash("one"), token_hash("two")]
    check_bearer("Bearer two", hashes)
    check_bearer("bearer   one ", hashes)
    with pytest.raises(Unauthenticated):
        check_bearer(None, hashes)
    with pytest.raises(Unauthenticated):
        check_bearer("JWT one", hashes)
    with pytest.raises(Forbidden):
        check_bearer("Bearer three", hashes)
    with pytest.raises(Forbidden):
        check_bearer("Bearer one", [])

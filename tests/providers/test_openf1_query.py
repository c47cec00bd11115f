"""OpenF1 query strings: only what the upstream reads as meant is ever sent (reference §2)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sessiongraph.filtering import Condition, FilterSpec
from sessiongraph.providers.openf1 import build_query


def q(**conditions: Condition) -> str | None:
    spec: FilterSpec = tuple(conditions.items())
    return build_query(spec)


def test_equality_and_in_lists_repeat_the_parameter() -> None:
    assert q(year=Condition(eq=2023)) == "year=2023"
    assert q(session_key=Condition(in_=(9140, 9141))) == "session_key=9140&session_key=9141"


def test_eq_and_in_intersect_before_sending() -> None:
    assert q(year=Condition(eq=2024, in_=(2023, 2024))) == "year=2024"
    assert q(year=Condition(eq=2025, in_=(2023, 2024))) is None


def test_ranges_send_one_interval_with_literal_operators() -> None:
    assert q(year=Condition(gte=2023, lte=2024)) == "year>=2023&year<=2024"
    assert q(year=Condition(gt=2023, gte=2020, lt=2026)) == "year>2023&year<2026"


def test_contradictory_ranges_send_nothing() -> None:
    # Upstream would OR these (`>5 OR <3`) and widen the result.
    assert q(year=Condition(gt=5, lt=3)) is None


def test_dates_are_full_utc_instants_with_encoded_plus() -> None:
    paris = timezone(timedelta(hours=2))
    query = q(date_start=Condition(gte=datetime(2023, 9, 16, 14, 0, tzinfo=paris)))
    assert query == "date_start>=2023-09-16T12:00:00%2B00:00"
    assert "=>" not in (query or "")


def test_naive_datetimes_are_utc() -> None:
    query = q(date_end=Condition(lt=datetime(2023, 1, 1)))
    assert query == "date_end<2023-01-01T00:00:00%2B00:00"


@pytest.mark.parametrize("value", ["MON", "MAR", "SUN", "2023", "true", "1e3", "a>=b", "x=y", ""])
def test_strings_the_upstream_would_misread_are_filtered_locally(value: str) -> None:
    assert q(country_code=Condition(eq=value)) == ""


def test_one_misread_value_keeps_the_whole_in_list_local() -> None:
    assert q(country_code=Condition(in_=("BEL", "MON"))) == ""
    assert q(country_code=Condition(in_=("BEL", "NED"))) == "country_code=BEL&country_code=NED"


def test_gmt_offset_is_never_cast_upstream() -> None:
    assert q(gmt_offset=Condition(eq="02:00:00")) == "gmt_offset=02%3A00%3A00"


def test_strings_are_percent_encoded() -> None:
    assert q(location=Condition(eq="Montréal")) == "location=Montr%C3%A9al"
    assert q(meeting_name=Condition(eq="São Paulo Grand Prix")) == (
        "meeting_name=S%C3%A3o%20Paulo%20Grand%20Prix"
    )


def test_latest_is_sent_as_the_keyword() -> None:
    assert q(session_key=Condition(latest=True)) == "session_key=latest"


def test_booleans_and_floats() -> None:
    assert q(is_cancelled=Condition(eq=False)) == "is_cancelled=false"
    assert build_query((("year", Condition(eq=2023)),), skip=("year",)) == ""

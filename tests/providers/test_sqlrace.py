"""SQL Race mapping: TimeSpan offsets, recording times, Key/State shapes and path segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest

from sessiongraph.config import Settings
from sessiongraph.errors import NotFound
from sessiongraph.providers._http import RetryPolicy, UpstreamClient
from sessiongraph.providers.sqlrace import (
    connection_record,
    parameter_record,
    parse_offset,
    path_segment,
    recorded_at,
    session_record,
    session_state,
)

GUID = "ce6b2b1c-4a4e-4b43-9f43-1b0e3a6f6f10"
SEED_ROW: dict[str, Any] = {
    "Key": {"value": GUID},
    "Identifier": "171218101010",
    "TimeOfRecording": "2017-12-18T10:10:10.1234567",
    "TimeZone": "UTC",
    "SessionType": "Session",
    "StartTime": "10:11:00.5000000",
    "EndTime": "11:01:30",
    "LapsCount": 12,
    "Id": 1180,
    "State": 2,
}


def row(**changes: Any) -> dict[str, Any]:
    return {key: value for key, value in (SEED_ROW | changes).items() if value is not None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:11:00.5000000", timedelta(hours=10, minutes=11, seconds=0.5)),
        ("00:00:00", timedelta(0)),
        ("01:02:03.1234567", timedelta(hours=1, minutes=2, seconds=3, microseconds=123456)),
        ("1.00:00:01.25", timedelta(days=1, seconds=1.25)),
        ("-00:00:01", timedelta(seconds=-1)),
    ],
)
def test_timespans_are_parsed(text: str, expected: timedelta) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("value", [None, 5, "", "abc", "10:11", "25:00:00:00", "1:2:3"])
def test_unreadable_timespans_are_none(value: Any) -> None:
    assert parse_offset(value) is None


def test_recording_time_is_read_in_the_session_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert recorded_at("2024-07-07T15:03:15.5800063", paris) == datetime(
        2024, 7, 7, 15, 3, 15, 580006, tzinfo=paris
    )
    # A later dialect's explicit offset wins over the zone.
    assert recorded_at("2024-07-07T15:03:15Z", paris) == datetime(2024, 7, 7, 15, 3, 15, tzinfo=UTC)
    assert recorded_at("2024-07-07T15:03:15", None) is None
    assert recorded_at("yesterday", UTC) is None


def test_the_seed_shape_object_key_and_integer_state() -> None:
    record = session_record("Season", row(), state_names={}, default_zone="UTC")
    assert record is not None
    assert record.key == GUID
    assert (record.state, record.state_code) == (None, 2)
    assert record.time_of_recording == datetime(2017, 12, 18, 10, 10, 10, 123456, tzinfo=UTC)
    assert record.starts_at == datetime(2017, 12, 18, 10, 11, 0, 500000, tzinfo=UTC)
    assert record.ends_at == datetime(2017, 12, 18, 11, 1, 30, tzinfo=UTC)
    assert (record.laps_count, record.session_id) == (12, 1180)


def test_integer_states_are_named_only_through_the_configured_table() -> None:
    record = session_record("S", row(), state_names={2: "Historical"}, default_zone="UTC")
    assert record is not None
    assert (record.state, record.state_code) == ("Historical", 2)
    assert session_state("Live", {2: "Historical"}) == ("Live", None)
    assert session_state("4", {}) == (None, 4)
    assert session_state(True, {1: "Exporting"}) == (None, None)


def test_the_metadata_shape_string_key_state_name_no_time_zone() -> None:
    record = session_record(
        "Sim", row(Key=GUID, State="Historical", TimeZone=None), state_names={}, default_zone="UTC"
    )
    assert record is not None
    assert (record.key, record.state, record.state_code, record.time_zone) == (
        GUID,
        "Historical",
        None,
        None,
    )
    # No TimeZone: the configured default zone places it.
    assert record.starts_at == datetime(2017, 12, 18, 10, 11, 0, 500000, tzinfo=UTC)
    berlin = session_record("Sim", row(TimeZone=None), state_names={}, default_zone="Europe/Berlin")
    assert berlin is not None
    assert berlin.starts_at is not None
    assert berlin.starts_at.utcoffset() == timedelta(hours=1)


def test_camel_case_rows_are_read_too() -> None:
    camel = {key[0].lower() + key[1:]: value for key, value in row().items()}
    assert session_record("S", camel, state_names={}, default_zone="UTC") == session_record(
        "S", row(), state_names={}, default_zone="UTC"
    )


def test_times_past_midnight() -> None:
    later_day = session_record("S", row(EndTime="1.00:30:00"), state_names={}, default_zone="UTC")
    wrapped = session_record(
        "S", row(StartTime="23:50:00", EndTime="00:20:00"), state_names={}, default_zone="UTC"
    )
    assert later_day is not None
    assert wrapped is not None
    assert later_day.ends_at == datetime(2017, 12, 19, 0, 30, tzinfo=UTC)
    assert wrapped.ends_at == datetime(2017, 12, 19, 0, 20, tzinfo=UTC)


def test_unplaceable_sessions_keep_their_raw_times() -> None:
    never_filled = session_record(
        "S", row(StartTime="00:00:00", EndTime="00:00:00"), state_names={}, default_zone="UTC"
    )
    unknown_zone = session_record(
        "S", row(TimeZone="Mars/Olympus"), state_names={}, default_zone="UTC"
    )
    assert never_filled is not None
    assert unknown_zone is not None
    assert (never_filled.starts_at, never_filled.ends_at) == (None, None)
    assert never_filled.start_time == "00:00:00"
    assert (unknown_zone.time_of_recording, unknown_zone.starts_at) == (None, None)
    assert unknown_zone.start_time == "10:11:00.5000000"


@pytest.mark.parametrize("key", [None, "", {"value": None}, {}, 17, ["x"]])
def test_rows_without_a_usable_key_are_dropped(key: Any) -> None:
    assert session_record("S", row(Key=key), state_names={}, default_zone="UTC") is None
    assert session_record("S", [SEED_ROW], state_names={}, default_zone="UTC") is None


def test_connections_hide_infrastructure_unless_told() -> None:
    raw = {
        "FriendlyName": "Season",
        "ServerName": "DB01\\SQLEXPRESS",
        "IsSqlite": False,
        "DatabaseName": "SQLRACE",
        "Identifier": "Season",
        "RootPath": "D:\\Filestream",
    }
    hidden = connection_record(raw, expose_infrastructure=False)
    shown = connection_record(raw, expose_infrastructure=True)
    assert hidden is not None
    assert shown is not None
    assert (hidden.server_name, hidden.root_path) == (None, None)
    assert (shown.server_name, shown.root_path) == ("DB01\\SQLEXPRESS", "D:\\Filestream")
    # v1 servers leave FriendlyName out; 2018 routes took it where Identifier is missing.
    v1 = connection_record({"Identifier": "Sim"}, expose_infrastructure=False)
    old = connection_record({"FriendlyName": "Old"}, expose_infrastructure=False)
    assert v1 is not None
    assert old is not None
    assert (v1.name, old.name) == ("Sim", "Old")
    assert connection_record({"IsSqlite": True}, expose_infrastructure=False) is None


def test_parameters_of_both_vintages() -> None:
    old = parameter_record({"Name": "vCar", "MaximumValue": 400, "MinimumValue": 0})
    new = parameter_record({"Identifier": "vCar:Chassis", "Units": "km/h"})
    assert old is not None
    assert new is not None
    assert (old.name, old.maximum_value, old.minimum_value) == ("vCar", 400.0, 0.0)
    assert (new.name, new.identifier, new.units) == ("vCar:Chassis", "vCar:Chassis", "km/h")


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "..",
        ".",
        "...",
        "../connections",
        "Season2024/sessions",
        "Season2024?page=1",
        "Season2024#frag",
        "100%",
        "%2F",
        "Live Session Cache",
        "a;b=c",
        "ünï",
    ],
)
def test_names_become_exactly_one_path_segment(name: str) -> None:
    segment = path_segment(name)
    assert not set(segment) & set("/?#;= ")
    assert segment.strip(".") != ""
    assert unquote(segment) == name


def test_state_names_setting_accepts_pairs_or_json() -> None:
    assert Settings(sqlrace_state_names="0=Created, 2=Historical").sqlrace_state_names == {
        0: "Created",
        2: "Historical",
    }
    assert Settings(sqlrace_state_names='{"4": "Live"}').sqlrace_state_names == {4: "Live"}


def test_an_empty_name_is_never_sent() -> None:
    with pytest.raises(NotFound):
        path_segment("")


@pytest.mark.parametrize("name", ["a/b", "..", ".", "x?y=1", "x#y", "100%", "../../token"])
def test_the_sent_url_keeps_one_segment(name: str) -> None:
    client = UpstreamClient("sqlrace", "http://sqlrace.test/api", timeout=1, retry=RetryPolicy())
    url = client.url(f"connections/{path_segment(name)}/sessions", "page=0")
    assert url.raw_parts == ("/", "api", "connections", path_segment(name), "sessions")
    assert (url.query_string, url.fragment) == ("page=0", "")

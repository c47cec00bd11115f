"""OpenF1 answers read into records through typed structs give exactly what the careful
row-by-row reading gives, for every collection of the sandbox data and for odd answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sessiongraph.providers.openf1 import (
    SESSION_COLLECTIONS,
    F1LapRecord,
    SessionResultRecord,
    row_reader,
    to_record,
)

DATA = Path(__file__).resolve().parents[2] / "sessiongraph" / "sandbox" / "data" / "openf1"


def careful(cls: type[Any], body: bytes) -> list[Any]:
    return [r for r in (to_record(cls, row) for row in orjson.loads(body)) if r is not None]


@pytest.mark.parametrize(
    "cls", [c for c, name in SESSION_COLLECTIONS.items() if (DATA / f"{name}.json").exists()]
)
def test_every_collection_reads_the_same_through_structs(cls: type[Any]) -> None:
    body = (DATA / f"{SESSION_COLLECTIONS[cls]}.json").read_bytes()
    reader = row_reader(cls)
    rows = reader.decode(body)
    assert type(rows[0]) is reader.struct
    assert reader.records(rows) == careful(cls, body)


LAP = {
    "session_key": 9839,
    "meeting_key": 1276,
    "driver_number": 1,
    "lap_number": 3,
    "date_start": "2025-12-07T13:05:00.5+00:00",
    "lap_duration": 90,
    "segments_sector_1": [2049, None, 2051],
    "is_pit_out_lap": False,
}

ODD_ANSWERS: list[Any] = [
    [LAP | {"lap_duration": "90.1"}],  # a number as text
    [LAP | {"is_pit_out_lap": 0}],  # an int for a bool
    [LAP | {"i1_speed": 301.5}],  # a float for an int
    [LAP | {"lap_number": True}],  # a bool for an int key: the row is dropped
    [LAP | {"segments_sector_1": [2049, "x"]}],  # an odd item in an array
    [LAP | {"segments_sector_1": "2049"}],  # not an array
    [LAP, "not a row", {"session_key": 1}],
    [LAP | {"date_start": 20251207}],
    [{k: v for k, v in LAP.items() if k != "driver_number"}],  # a key field missing
]


@pytest.mark.parametrize("answer", ODD_ANSWERS)
def test_odd_answers_read_as_the_careful_path_reads_them(answer: list[Any]) -> None:
    body = orjson.dumps(answer)
    reader = row_reader(F1LapRecord)
    assert reader.records(reader.decode(body)) == careful(F1LapRecord, body)


def test_clean_rows_keep_their_types() -> None:
    reader = row_reader(F1LapRecord)
    (lap,) = reader.records(reader.decode(orjson.dumps([LAP])))
    assert lap.lap_duration == 90.0
    assert type(lap.lap_duration) is float
    assert lap.segments_sector_1 == (2049, None, 2051)
    assert lap.date_start is not None
    assert lap.date_start.utcoffset() is not None


def test_fields_read_from_one_upstream_field_in_several_shapes() -> None:
    # `duration` is a number, a Q1-Q3 array, or absent: each shape has its own record field.
    rows = [
        {"session_key": 1, "meeting_key": 1, "driver_number": 1, "duration": 91.5},
        {"session_key": 1, "meeting_key": 1, "driver_number": 2, "duration": [80.1, None, 79]},
        {"session_key": 1, "meeting_key": 1, "driver_number": 3, "gap_to_leader": "+1 LAP"},
    ]
    body = orjson.dumps(rows)
    reader = row_reader(SessionResultRecord)
    assert reader.records(reader.decode(body)) == careful(SessionResultRecord, body)


def test_answers_that_are_not_lists_decode_as_json() -> None:
    reader = row_reader(F1LapRecord)
    assert reader.decode(b'{"detail": "No results found."}') == {"detail": "No results found."}
    with pytest.raises(orjson.JSONDecodeError):
        reader.decode(b"[{")

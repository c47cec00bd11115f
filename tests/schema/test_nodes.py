"""Global IDs: `node`, `nodes` and federation `_entities` through the loaders, and bad IDs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sessiongraph.schema.ids import encode_id
from tests._servers import Gateway, Sandbox

NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
ENTITIES = """query($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Meeting { meetingKey meetingName }
    ... on F1Session { sessionKey }
    ... on SqlRaceSession { key connectionName }
  }
}"""
ONE_OF_EACH = """{
  meeting(key: 1216) { id sessions { id } }
  guides { nodes { id scheduleTracks { id } locations { id } } }
  guidebookSessions(guideId: 58214, first: 1) { nodes { id } }
  connections { id sessions(first: 1) { nodes { id } } }
}"""


def raw_id(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_every_entity_comes_back_by_its_id(gateway: Gateway) -> None:
    data = gateway.query(ONE_OF_EACH)["data"]
    guide = data["guides"]["nodes"][0]
    connection = data["connections"][0]
    ids = {
        "Meeting": data["meeting"]["id"],
        "F1Session": data["meeting"]["sessions"][0]["id"],
        "Guide": guide["id"],
        "ScheduleTrack": guide["scheduleTracks"][0]["id"],
        "Location": guide["locations"][0]["id"],
        "GuidebookSession": data["guidebookSessions"]["nodes"][0]["id"],
        "Connection": connection["id"],
        "SqlRaceSession": connection["sessions"]["nodes"][0]["id"],
    }

    for type_name, global_id in ids.items():
        result = gateway.query(NODE, {"id": global_id})
        assert result["data"]["node"] == {"__typename": type_name, "id": global_id}, result
    found = gateway.query(NODES, {"ids": list(ids.values())})["data"]["nodes"]
    assert [n["__typename"] for n in found] == list(ids)


def test_nodes_of_one_kind_load_in_one_request(gateway: Gateway, sandbox: Sandbox) -> None:
    sessions = gateway.query("{ f1Sessions(filter: { year: { eq: 2023 } }) { id } }")
    ids = [s["id"] for s in sessions["data"]["f1Sessions"][:20]]
    sandbox.reset("openf1")

    result = gateway.query(NODES, {"ids": ids})

    assert [n["id"] for n in result["data"]["nodes"]] == ids
    assert sandbox.stats("openf1")["by_path"] == {"/v1/sessions": 1}


@pytest.mark.parametrize(
    "global_id",
    [
        "not base64!",
        raw_id("nocolon"),
        raw_id("Driver:1"),
        raw_id("Meeting:abc"),
        raw_id("Meeting:01216"),
        raw_id("SqlRaceSession:no-connection"),
    ],
)
def test_malformed_or_foreign_ids(gateway: Gateway, sandbox: Sandbox, global_id: str) -> None:
    result = gateway.query(NODE, {"id": global_id})

    assert result["data"]["node"] is None
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert sandbox.requests("openf1") == 0


def test_missing_objects_are_null_with_not_found(gateway: Gateway) -> None:
    ids = [encode_id("Meeting", 1216), encode_id("Meeting", 999999), "junk"]
    result = gateway.query(NODES, {"ids": ids})

    assert result["data"]["nodes"][0]["__typename"] == "Meeting"
    assert result["data"]["nodes"][1:] == [None, None]
    codes = {tuple(e["path"]): e["extensions"]["code"] for e in result["errors"]}
    assert codes == {("nodes", 1): "NOT_FOUND", ("nodes", 2): "BAD_USER_INPUT"}


def test_nodes_takes_at_most_a_hundred_ids(gateway: Gateway) -> None:
    result = gateway.query(NODES, {"ids": [encode_id("Meeting", 1216)] * 101})

    assert result["data"] is None
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_entities_resolve_by_any_key_in_one_request(gateway: Gateway, sandbox: Sandbox) -> None:
    keys = [1216, 1217, 1218, 1219]
    representations: list[Any] = [{"__typename": "Meeting", "meetingKey": k} for k in keys]
    representations.append({"__typename": "Meeting", "id": encode_id("Meeting", 1140)})

    result = gateway.query(ENTITIES, {"representations": representations})

    assert "errors" not in result, result
    assert [e["meetingKey"] for e in result["data"]["_entities"]] == [*keys, 1140]
    assert sandbox.stats("openf1")["by_path"] == {"/v1/meetings": 1}


def test_entities_by_compound_key(gateway: Gateway) -> None:
    session = gateway.query(
        '{ connection(name: "Simulator") { sessions(first: 1) { nodes { key } } } }'
    )
    key = session["data"]["connection"]["sessions"]["nodes"][0]["key"]
    representation = {"__typename": "SqlRaceSession", "connectionName": "Simulator", "key": key}

    result = gateway.query(ENTITIES, {"representations": [representation]})

    assert result["data"]["_entities"] == [
        {"__typename": "SqlRaceSession", "key": key, "connectionName": "Simulator"}
    ]


def test_bad_representations_fail_alone(gateway: Gateway) -> None:
    representations = [
        {"__typename": "Meeting", "meetingKey": 1216},
        {"__typename": "Meeting", "id": encode_id("F1Session", 9140)},
        {"__typename": "Nothing", "id": "x"},
        {"meetingKey": 1216},
        {"__typename": "Meeting"},
        "text",
    ]
    result = gateway.query(ENTITIES, {"representations": representations})

    assert result["data"]["_entities"][0]["meetingName"] == "Belgian Grand Prix"
    assert result["data"]["_entities"][1:] == [None] * 5
    assert sorted(e["path"][1] for e in result["errors"]) == [1, 2, 3, 4, 5]
    assert {e["extensions"]["code"] for e in result["errors"]} == {"BAD_USER_INPUT"}


@pytest.mark.parametrize(
    ("type_name", "collection", "keys"),
    [
        ("GuidebookSession", "sessions", [4120337, 4120338, 4120339]),
        ("ScheduleTrack", "schedule-tracks", [301101, 301102, 301103]),
        ("Location", "locations", [77014, 77015, 77016]),
        ("Guide", "guides", [58214, 58377]),
    ],
)
def test_one_failing_id_fails_alone(
    make_gateway: Any, sandbox: Sandbox, type_name: str, collection: str, keys: list[int]
) -> None:
    gateway = make_gateway(retry_attempts=0)
    failing = keys[-1]
    sandbox.faults(
        "guidebook",
        error_rate=1.0,
        error_status=503,
        path_prefix=f"/open-api/v1/{collection}/{failing}/",
    )
    ids = [encode_id(type_name, key) for key in keys]

    for query, variables in (
        (NODES, {"ids": ids}),
        (
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [{"__typename": type_name, "id": i} for i in ids]},
        ),
    ):
        result = gateway.query(query, variables)
        found = next(iter(result["data"].values()))
        assert [n["__typename"] if n else None for n in found] == [type_name] * (len(keys) - 1) + [
            None
        ]
        (error,) = result["errors"]
        assert error["path"][1] == len(keys) - 1
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"

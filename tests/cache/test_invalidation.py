"""A Guidebook write drops exactly the cached reads it can have changed, and no others."""

from __future__ import annotations

from typing import Any

from tests._servers import Sandbox
from tests.schema.test_guidebook import BEARER, CDC, UPDATE

OTHER_GUIDE = 58377
NAMES = "query($guide: Int!) { guidebookSessions(guideId: $guide, first: 100) { nodes { name } } }"
ONE = "query($id: Int!) { guidebookSession(id: $id) { name } }"


def names(gateway: Any, guide: int) -> list[str]:
    result = gateway.query(NAMES, {"guide": guide})
    assert "errors" not in result, result
    return [n["name"] for n in result["data"]["guidebookSessions"]["nodes"]]


def test_a_write_drops_its_guides_reads_and_keeps_the_others(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(cache_url="memory://")
    first = names(gateway, CDC)
    other = names(gateway, OTHER_GUIDE)
    session_id = gateway.query(
        "query($guide: Int!) { guidebookSessions(guideId: $guide, first: 1) "
        "{ nodes { guidebookId } } }",
        {"guide": CDC},
    )["data"]["guidebookSessions"]["nodes"][0]["guidebookId"]
    assert gateway.query(ONE, {"id": session_id})["data"]["guidebookSession"]["name"] == first[0]

    renamed = gateway.query(
        UPDATE, {"input": {"id": session_id, "name": "Renamed After Write"}}, **BEARER
    )
    assert renamed["data"]["updateSession"]["userErrors"] == []
    before = sandbox.stats("guidebook")["by_path"]

    # Read after write: never the old value, for the list and for the session itself.
    assert "Renamed After Write" in names(gateway, CDC)
    assert gateway.query(ONE, {"id": session_id})["data"]["guidebookSession"]["name"] == (
        "Renamed After Write"
    )
    # The other guide's list was not touched by the write: still served from the cache.
    assert names(gateway, OTHER_GUIDE) == other
    after = sandbox.stats("guidebook")["by_path"]
    session_path = f"/open-api/v1/sessions/{session_id}/"
    assert after[session_path] == before.get(session_path, 0) + 1
    assert after["/open-api/v1/sessions/"] == before["/open-api/v1/sessions/"] + 1
